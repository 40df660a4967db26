# Call 19 (ran in the thirty-eighth session, H100, 6 s, on the kernels before it: nosmall;
# carry .whl, .gpu-tune/nosmall/$T): the dense towers at 1-8 tokens.
# Why: call 17's A/B (thirty-eighth session, H100) had 1536x6144 at M = 8 10.35 us but
# M = 16 8.87, and the thirtieth session's H200 run M = 8 10.17 against M = 9 8.47: below
# SFM_RS_MIN_TOKENS (9) auto takes the warp kernel for both of its GEMMs, and a 20% cliff
# at one token more is what a user sees. Forced paths on the same build, whole MLPs,
# 7 rounds, outputs contract-checked: auto, both GEMMs on the register-sourced wgmma
# kernel, both on swap-AB, and each GEMM alone on the register-sourced kernel.
set -x
export PYTHONPATH=$PWD/cli
T=torch211-cxx11-cu130-x86_64-linux
H=.gpu-tune/nosmall/$T
nvidia-smi --query-gpu=name --format=csv,noheader > $OUT/device.txt 2>&1; cat $OUT/device.txt
python3 scripts/mlp_ab.py --kinds gelu2,gelu_768,gelu_1536_4304,gelu --m 1,2,4,6,8 --rounds 7 \
  $H $H:tensor_core_stream/tensor_core_stream $H:tensor_core_swap_ab/tensor_core_swap_ab \
  $H:tensor_core_stream/auto $H:auto/tensor_core_stream \
  --json $OUT/ab_small_m.json > $OUT/ab_small_m.txt 2>&1
tail -5 $OUT/ab_small_m.txt
python3 scripts/ab_verdict.py $OUT/ab_small_m.json --json $OUT/ab_small_m_verdict.json | tail -90
