# Call 21 (ran in the thirty-eighth session, H100, 9 s, on small4, that session's build then;
# carry .whl, .gpu-tune/small4/$T): small gated MLPs whose weights are
# L2-resident (Qwen2.5-0.5B 896x4864, Qwen3-0.6B 1024x3072, Gemma-3-1B 1152x6912, the
# decode of small LLMs). Auto keeps their gate/up GEMM on the warp kernel to 8 tokens
# and the register-sourced one at 9-64 (hopper::pick: l2_mid_takes excludes gated
# gate/up GEMMs, "not measured"). Forced paths on one build, whole MLPs, 7 rounds,
# outputs contract-checked: auto, the gate/up GEMM on the swap-AB kernel (down auto),
# both on it, both on the register-sourced kernel.
set -x
export PYTHONPATH=$PWD/cli
T=torch211-cxx11-cu130-x86_64-linux
H=.gpu-tune/small4/$T
nvidia-smi --query-gpu=name --format=csv,noheader > $OUT/device.txt 2>&1; cat $OUT/device.txt
python3 scripts/mlp_ab.py --kinds geglu_896_4864,geglu_1024_3072,geglu_1152_6912 --m 1,2,4,8,12,16,24,32,40,50,64 --rounds 7 \
  $H $H:tensor_core_swap_ab/auto $H:tensor_core_swap_ab/tensor_core_swap_ab \
  $H:tensor_core_stream/tensor_core_stream \
  --json $OUT/ab_small_gated.json > $OUT/ab_small_gated.txt 2>&1
tail -3 $OUT/ab_small_gated.txt
python3 scripts/ab_verdict.py $OUT/ab_small_gated.json --json $OUT/ab_small_gated_verdict.json | tail -110
