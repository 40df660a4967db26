# Call 35 (thirty-ninth session; ~2 min; carry .whl, .gpu-tune/{head,ered}/$T): experiment
# 10. The swap-AB down GEMM over a workspace with L2-resident weights (the dense towers'
# at 8-64+ tokens, small gated MLPs' at 9-64) lets its reduce kernel launch only when its
# last CTA exits (triggers_next is off there: letting the next MLP launch early was
# slower). `ered` lets the reduce launch as the GEMM starts, its CTAs waiting on the SMs
# the GEMM leaves free, while the reduce still lets the next kernel launch only after
# its wait. Whole MLPs against head, 7 rounds, contract-checked; then the swap-AB and
# dense GPU tests and memcheck on ered.
set -x
export PYTHONPATH=$PWD/cli
T=torch211-cxx11-cu130-x86_64-linux
H=.gpu-tune/head/$T; E=.gpu-tune/ered/$T
nvidia-smi --query-gpu=name --format=csv,noheader > $OUT/device.txt 2>&1; cat $OUT/device.txt
python3 scripts/mlp_ab.py --kinds gelu,gelu2,gelu_768,gelu_1536_4304,geglu_896_4864,geglu_1152_6912,geglu \
  --m 8,16,32,50,64,100,128,160 --rounds 7 $H $E --json $OUT/ab_ered.json > $OUT/ab_ered.txt 2>&1
python3 scripts/ab_verdict.py $OUT/ab_ered.json --json $OUT/ab_ered_verdict.json | tail -60
GPU_CHECK_SUMMARY=1 OUT=$OUT/check_ered timeout 150 bash scripts/gpu_check.sh $E tests/test_kernels_gpu.py -k "swap or dense or gelu or gated_decode or capture"
bash scripts/memcheck.sh $E ered \
  --kinds gelu,gelu2,geglu_896_4864 --paths auto --m 16,50,128
