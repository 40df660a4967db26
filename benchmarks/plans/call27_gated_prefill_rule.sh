# Call 27 (thirty-ninth session; ~5 min; carry .whl, .gpu-tune/{head,prev39}/$T): the
# head landed after calls 25 and 26 (fine promotion in the deep-ring kernels; the small
# gated MLPs' gate/up GEMM on the swap-AB kernel at 65-128 tokens, and to 512 where its
# 128-row tiles nearly fill the GPU) against prev39 (the head calls 25 and 26 ran): whole auto
# MLPs, 7 rounds, outputs contract-checked; then the kernel and registry suites and
# memcheck over the new paths.
set -x
export PYTHONPATH=$PWD/cli
T=torch211-cxx11-cu130-x86_64-linux
H=.gpu-tune/head/$T; O=.gpu-tune/prev39/$T
nvidia-smi --query-gpu=name --format=csv,noheader > $OUT/device.txt 2>&1; cat $OUT/device.txt
python3 scripts/mlp_ab.py --kinds geglu_576_1536,geglu_896_4864,geglu_1024_3072,geglu_1152_6912,geglu_2048_8192 \
  --m 16,64,65,96,128,129,160,192,256,384,512 --rounds 7 $O $H --json $OUT/ab_rule.json > $OUT/ab_rule.txt 2>&1
python3 scripts/ab_verdict.py $OUT/ab_rule.json --json $OUT/ab_rule_verdict.json | tail -60
python3 scripts/mlp_ab.py --kinds geglu,swiglu,gelu,gelu2 --m 1,16,50,128,512 --rounds 5 $O $H \
  --json $OUT/ab_grid.json > $OUT/ab_grid.txt 2>&1
python3 scripts/ab_verdict.py $OUT/ab_grid.json --json $OUT/ab_grid_verdict.json | tail -25
GPU_CHECK_SUMMARY=1 OUT=$OUT/check_head timeout 240 bash scripts/gpu_check.sh $H tests/test_kernels_gpu.py tests/test_registry_gpu.py
bash scripts/memcheck.sh $H head \
  --kinds geglu_1152_6912,geglu_2048_8192,geglu_576_1536,geglu --paths auto --m 1,16,65,128,200
