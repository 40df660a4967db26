# Call 15 (ran in the thirty-seventh session on an H200: the A/B alone took 7.5 min and the
# call's 540 s limit cut the suite off half way; carry .whl, .gpu-tune/{head,half}/$T): half = this tree with the dense
# up GEMM on the swap-AB kernel at 64 weight rows per CTA (SwapPlan's HALF: 68 CTAs for
# 4304 columns instead of 34, the two consumer warpgroups splitting K, the partial sums
# added in shared memory) up to 64 tokens. Call 14 had that up GEMM at 4.1 / 5.1 us
# (eager) at M = 16 / 50, its 34 CTAs each streaming a 147 KB weight slice from L2. First
# the A/B against head over the four dense shapes (whole MLPs, 7 rounds), then the
# kernel suite and memcheck on half. Result: slower for 1152x4304 at 8-56 tokens (+0.3 to
# +1.1 us), faster for the K = 768 / 1536 towers at 33-64 (RESULTS.md); not landed.
set -x
export PYTHONPATH=$PWD/cli
T=torch211-cxx11-cu130-x86_64-linux
H=.gpu-tune/head/$T; F=.gpu-tune/half/$T
python3 scripts/mlp_ab.py --kinds gelu,gelu2,gelu_768,gelu_1536_4304 --m 8,16,24,32,33,40,50,56,64 --rounds 7 $H $F --json $OUT/ab_half.json > $OUT/ab_half.txt 2>&1
python3 scripts/ab_verdict.py $OUT/ab_half.json --json $OUT/ab_half_verdict.json | tail -45
GPU_CHECK_SUMMARY=1 OUT=$OUT/check_half bash scripts/gpu_check.sh $F tests/test_kernels_gpu.py
PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --tool memcheck python3 scripts/memcheck_sweep.py --build $F --kinds gelu,gelu2,gelu_768 --paths auto,tensor_core_swap_ab --m 8,17,50,64 > $OUT/memcheck_half.txt 2>&1
tail -2 $OUT/memcheck_half.txt
