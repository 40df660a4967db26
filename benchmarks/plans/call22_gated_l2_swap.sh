# Call 22 (ran in the thirty-eighth session, H100, 129 s; carry .whl,
# .gpu-tune/{gated4,small4}/$T): that session's second routing change (both GEMMs of a
# gated MLP whose weights are L2-resident on the swap-AB kernel, swap_gemm::l2_gated_takes,
# after call 21's forced paths), in its first form from 4 tokens (gated4; head keeps it
# from 9 after call 23) against small4 (the rule off; the result file calls it nogated),
# whole MLPs, 9 rounds, outputs contract-checked: five small LLMs'
# gated MLPs (SmolLM2-135M, Qwen2.5-0.5B, Qwen3-0.6B, Gemma-3-1B, Llama-3.2-1B, the last
# with only its down GEMM L2-resident) and two dense towers (which it must not move);
# then the kernel suite (the new gated cases) and memcheck of auto on gated4.
set -x
export PYTHONPATH=$PWD/cli
T=torch211-cxx11-cu130-x86_64-linux
H=.gpu-tune/gated4/$T; N=.gpu-tune/small4/$T
nvidia-smi --query-gpu=name --format=csv,noheader > $OUT/device.txt 2>&1; cat $OUT/device.txt
python3 scripts/mlp_ab.py --kinds geglu_576_1536,geglu_896_4864,geglu_1024_3072,geglu_1152_6912,geglu_2048_8192,gelu,gelu_768 \
  --m 1,3,4,8,9,16,24,32,33,48,64,65 --rounds 9 $N $H --json $OUT/ab_gated_l2.json > $OUT/ab_gated_l2.txt 2>&1
tail -3 $OUT/ab_gated_l2.txt
python3 scripts/ab_verdict.py $OUT/ab_gated_l2.json --json $OUT/ab_gated_l2_verdict.json | tail -90
GPU_CHECK_SUMMARY=1 OUT=$OUT/check_head timeout 220 bash scripts/gpu_check.sh $H tests/test_kernels_gpu.py
PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout 120 compute-sanitizer --tool memcheck python3 scripts/memcheck_sweep.py --build $H --kinds geglu_576_1536,geglu_896_4864,geglu_1152_6912,geglu_2048_8192 --paths auto --m 3,4,9,33,64 > $OUT/memcheck_head.txt 2>&1
tail -2 $OUT/memcheck_head.txt
