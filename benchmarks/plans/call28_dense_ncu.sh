# Call 28 (thirty-ninth session; ~3 min; carry .whl, .gpu-tune/head/$T): where the dense
# 1152x4304 MLP's kernels spend their time at 16 / 50 / 128 tokens (issue #5's one unmet
# target), with the hardware counters: ncu on the second of two auto calls (its three
# kernels: up GEMM, down GEMM, split-K reduce; L2 left warm as in a CUDA-graph replay,
# clocks left alone), and cuBLAS's two GEMMs of the same shape timed for comparison.
# Ran on an H100 (51 s) with the filter regex:"fp8_gemm|reduce", which also caught a torch
# reduction of the probe's setup and so missed the split-K reduce; the filter below is
# the fixed one.
set -x
export PYTHONPATH=$PWD/cli:$PWD/scripts
T=torch211-cxx11-cu130-x86_64-linux
H=.gpu-tune/head/$T
nvidia-smi --query-gpu=name --format=csv,noheader > $OUT/device.txt 2>&1; cat $OUT/device.txt
for m in 16 50 128; do
  timeout 120 ncu --clock-control none --cache-control none -k regex:"fp8_gemm|split_k_reduce" --launch-skip 3 --launch-count 3 \
    --section SpeedOfLight --section MemoryWorkloadAnalysis --section WarpStateStats --section SchedulerStats \
    --section LaunchStats --section Occupancy python3 scripts/one_call.py --build $H gelu $m > $OUT/ncu_dense_$m.txt 2>&1
  grep -E "fp8_gemm|reduce_kernel|^    Duration|Memory Throughput|L2 Cache Throughput|DRAM Throughput|Compute \(SM\) Throughput|Grid Size|Registers Per|L2 Hit Rate|Warp Cycles Per Issued|Issued Warp Per" $OUT/ncu_dense_$m.txt
  python3 scripts/cublas_call.py gelu $m --time
done
