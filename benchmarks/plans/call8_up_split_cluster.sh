# Call 8 (~8 min; carry .whl, .gpu-tune/{head,usk,usk192}/$T): experiment 5 (thirty-first
# session, compiled but never run): usk = head with a dense up GEMM on the swap-AB
# kernel at M <= 64 split over K in clusters (1152x4304 and 1536x4304: 3 CTAs per
# weight tile, 102 in all; 1536x6144 and 768x3072: 2), its GELU epilogue after the
# reduction over distributed shared memory. Expected: the vision towers' up GEMMs
# (24-48 weight tiles, one CTA each today) shorter at 8-64 tokens. The kernel suite
# first (every forced swap-AB path and the new auto test run it); byte equality with
# head wherever the up GEMM is not split (gated MLPs; dense MLPs with the up GEMM on
# the wgmma kernel: the down GEMMs' cluster reduction was refactored for it); memcheck;
# then the A/B over the four dense shapes, 9 rounds; last, the split at 65-192 tokens
# (usk192, the up GEMM forced onto the swap-AB kernel, which auto does not take there:
# against head's auto, which runs it on the wgmma kernel; outputs contract-checked).
set -x
export PYTHONPATH=$PWD/cli
T=torch211-cxx11-cu130-x86_64-linux
H=.gpu-tune/head/$T; U=.gpu-tune/usk/$T; U2=.gpu-tune/usk192/$T
OUT=$OUT/check_usk bash scripts/gpu_check.sh $U tests/test_kernels_gpu.py > /dev/null 2>&1
tail -3 $OUT/check_usk/gpu-tests.log
python3 scripts/build_equal.py $H $U --kinds geglu,swiglu --m 1,16,50,64,100,192 \
  --paths auto,auto/tensor_core_swap_ab_cluster,auto/tensor_core_split_k_cluster > $OUT/equal_usk.txt 2>&1
python3 scripts/build_equal.py $H $U --kinds gelu,gelu2 --m 16,50,100 \
  --paths tensor_core_tma/tensor_core_swap_ab_cluster,tensor_core_tma/tensor_core_split_k_cluster >> $OUT/equal_usk.txt 2>&1
tail -1 $OUT/equal_usk.txt; grep -c FAIL $OUT/equal_usk.txt
PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --tool memcheck python3 scripts/memcheck_sweep.py --build $U --kinds gelu,gelu2,gelu_768 --paths auto,tensor_core_swap_ab --m 8,17,50,64 > $OUT/memcheck_usk.txt 2>&1
tail -1 $OUT/memcheck_usk.txt
python3 scripts/mlp_ab.py --kinds gelu,gelu2,gelu_768,gelu_1536_4304 --m 8,16,24,32,33,40,50,64 --rounds 9 $H $U --json $OUT/ab_usk.json > $OUT/ab_usk.txt 2>&1
cat $OUT/ab_usk.txt; python3 scripts/ab_verdict.py $OUT/ab_usk.json --json $OUT/ab_usk_verdict.json
python3 scripts/mlp_ab.py --kinds gelu,gelu2 --m 65,96,128,160,192 --rounds 7 $H $H:tensor_core_swap_ab/auto $U2:tensor_core_swap_ab/auto --json $OUT/ab_usk192.json > $OUT/ab_usk192.txt 2>&1
cat $OUT/ab_usk192.txt
# The registry's host time per call with the real kernels (bench_fused_overhead.py; ~20 s)
PYTHONPATH=/tmp/sfm-site:$PYTHONPATH python3 benchmarks/bench_fused_overhead.py --device cuda --build $H --out $OUT/overhead 2>&1 | tail -12
