# Call 31 (thirty-ninth session; ~2 min; carry .whl, .gpu-tune/{head,sx64}/$T): experiment
# 9, the dense up GEMM's tall 64-row tiles at one token tile (auto at M = 65-128) in
# x-sharing pairs: each CTA of a pair loads half of the 128-token x tile for both (TMA
# multicast), so the GEMM pulls 10 instead of 15 MB through L2 at 1152x4304 M = 128.
# Whole MLPs against head, 7 rounds, contract-checked; then the dense GPU tests at those
# sizes and memcheck on sx64.
set -x
export PYTHONPATH=$PWD/cli
T=torch211-cxx11-cu130-x86_64-linux
H=.gpu-tune/head/$T; X=.gpu-tune/sx64/$T
nvidia-smi --query-gpu=name --format=csv,noheader > $OUT/device.txt 2>&1; cat $OUT/device.txt
python3 scripts/mlp_ab.py --kinds gelu,gelu2,gelu_768,gelu_1536_4304 --m 64,65,80,96,100,112,128,129 --rounds 7 \
  $H $X --json $OUT/ab_sx64.json > $OUT/ab_sx64.txt 2>&1
python3 scripts/ab_verdict.py $OUT/ab_sx64.json --json $OUT/ab_sx64_verdict.json | tail -40
GPU_CHECK_SUMMARY=1 OUT=$OUT/check_sx64 timeout 150 bash scripts/gpu_check.sh $X tests/test_kernels_gpu.py -k "dense or gelu"
bash scripts/memcheck.sh $X sx64 \
  --kinds gelu,gelu2,gelu_768 --paths auto --m 65,100,128
