# Call 14 (~5 min; carry .whl, .gpu-tune/head/$T, .gpu-tune/probes): where the dense
# 1152x4304 MLP's time goes at M = 16 / 50 / 128 on the H100 (the one issue #5 target
# still open), and whether a one-kernel design could close it:
# 1. benchmarks/split_h_probe.cu (built here: nvcc -std=c++17 -O3 -arch=sm_90a -o
#    .gpu-tune/probes/split_h_probe benchmarks/split_h_probe.cu): the memory side of a
#    one-kernel dense MLP split over H (weights before the wait, partial outputs added in
#    L2, the last arrival per column block converting), against the launch alone;
# 2. the eager per-kernel times of today's kernels (perf_probe --kernels);
# 3. auto against the other swap-AB / cluster path pairs and torch.compile, interleaved.
set -x
export PYTHONPATH=$PWD/cli
T=torch211-cxx11-cu130-x86_64-linux
H=.gpu-tune/head/$T
nvidia-smi --query-gpu=name,clocks.max.sm,clocks.sm,power.draw --format=csv > $OUT/device.txt 2>&1
.gpu-tune/probes/split_h_probe > $OUT/split_h_probe.txt 2>&1; cat $OUT/split_h_probe.txt
.gpu-tune/probes/split_h_probe 1536 6144 1536 > $OUT/split_h_probe_1536.txt 2>&1; tail -20 $OUT/split_h_probe_1536.txt
python3 scripts/perf_probe.py --build $H --kinds gelu --m 16,50,128 --kernels --json $OUT/dense_kernels.json > $OUT/dense_kernels.txt 2>&1
tail -45 $OUT/dense_kernels.txt
python3 scripts/mlp_ab.py --kinds gelu --m 16,50,128 --rounds 7 $H \
  $H:tensor_core_swap_ab/tensor_core_swap_ab_cluster $H:auto/tensor_core_swap_ab_cluster \
  $H:auto/tensor_core_split_k_cluster $H:tensor_core_swap_ab/auto compile \
  --json $OUT/ab_dense_paths.json > $OUT/ab_dense_paths.txt 2>&1
cat $OUT/ab_dense_paths.txt
