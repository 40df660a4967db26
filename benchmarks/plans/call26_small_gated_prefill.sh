# Call 26 (prepared in the thirty-eighth session, ran in the thirty-ninth on an H100, 7 s; carry .whl,
# .gpu-tune/head/$T): small LLMs' gated MLPs above 64 tokens. From 65 auto gives their
# L2-resident gate/up GEMM the wgmma tiles (swap_gemm::auto_takes wants a gate/up GEMM
# whose 128-row tiles fill the GPU, and these have 12-108), and their down GEMM what the
# dense towers' get; at 9-64 the swap-AB kernel was 8-40% faster for both (call 22).
# Forced paths on one build, whole MLPs, 7 rounds, outputs contract-checked: auto, the
# gate/up GEMM on the swap-AB kernel, both on it.
set -x
export PYTHONPATH=$PWD/cli
T=torch211-cxx11-cu130-x86_64-linux
H=.gpu-tune/head/$T
nvidia-smi --query-gpu=name --format=csv,noheader > $OUT/device.txt 2>&1; cat $OUT/device.txt
python3 scripts/mlp_ab.py --kinds geglu_576_1536,geglu_896_4864,geglu_1024_3072,geglu_1152_6912,geglu_2048_8192 \
  --m 64,65,96,128,160,192,256,384,512 --rounds 7 \
  $H $H:tensor_core_swap_ab/auto $H:tensor_core_swap_ab/tensor_core_swap_ab \
  --json $OUT/ab_small_gated_prefill.json > $OUT/ab_small_gated_prefill.txt 2>&1
tail -3 $OUT/ab_small_gated_prefill.txt
python3 scripts/ab_verdict.py $OUT/ab_small_gated_prefill.json --json $OUT/ab_small_gated_prefill_verdict.json | tail -100
