# Call 20 (ran in the thirty-eighth session, H100, 115 s; carry .whl,
# .gpu-tune/{small4,nosmall}/$T): that session's first routing change (every L2-resident
# GEMM but a gated gate/up one on the swap-AB kernel at 4-8 tokens,
# swap_gemm::l2_mid_takes; small4, its build then) against nosmall (the routing before)
# on the four dense towers and a small gated MLP (896x4864, whose down GEMM it moves
# while its gate/up GEMM stays on the warp kernel), M = 1-9, whole MLPs, 9 rounds,
# outputs contract-checked; then the kernel suite (its new M = 3-9 cases) and memcheck
# of auto at 3-9. Measured faster; left off by default after call 23 (precision).
set -x
export PYTHONPATH=$PWD/cli
T=torch211-cxx11-cu130-x86_64-linux
H=.gpu-tune/small4/$T; N=.gpu-tune/nosmall/$T
nvidia-smi --query-gpu=name --format=csv,noheader > $OUT/device.txt 2>&1; cat $OUT/device.txt
python3 scripts/mlp_ab.py --kinds gelu,gelu2,gelu_768,gelu_1536_4304,geglu_896_4864 --m 1,2,3,4,5,6,7,8,9 \
  --rounds 9 $N $H --json $OUT/ab_small_swap.json > $OUT/ab_small_swap.txt 2>&1
tail -3 $OUT/ab_small_swap.txt
python3 scripts/ab_verdict.py $OUT/ab_small_swap.json --json $OUT/ab_small_swap_verdict.json | tail -50
GPU_CHECK_SUMMARY=1 OUT=$OUT/check_head timeout 200 bash scripts/gpu_check.sh $H tests/test_kernels_gpu.py
PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout 120 compute-sanitizer --tool memcheck python3 scripts/memcheck_sweep.py --build $H --kinds gelu,gelu2,gelu_768,geglu_896_4864 --paths auto --m 3,4,5,8,9 > $OUT/memcheck_head.txt 2>&1
tail -2 $OUT/memcheck_head.txt
