# Call 17 (~7 min on an H100; carry .whl, .gpu-tune/{head,dchain}/$T): experiment 7,
# dchain = this tree with the 8-stage swap-AB kernels (the dense up GEMM; the down GEMM
# over a workspace) at token tiles up to 64 splitting each K tile's four k32 wgmmas over
# two accumulators (two dependent chains of 2). Why: the thirtieth session's span trace
# had the dense up GEMM's consumer at M = 50 waiting for stages or wgmma groups in only
# about 1 us of its 3.2 us mainloop (results/phase_trace_spans_h200_2026-12-05_thirtieth.txt).
# First the A/B against head over three dense shapes (whole MLPs, 7 rounds, outputs
# contract-checked), then, whatever it reads, the kernel suite and memcheck on dchain
# (the suite's forced swap-AB cases run every token tile it changes).
set -x
export PYTHONPATH=$PWD/cli
T=torch211-cxx11-cu130-x86_64-linux
H=.gpu-tune/head/$T; D=.gpu-tune/dchain/$T
nvidia-smi --query-gpu=name --format=csv,noheader > $OUT/device.txt 2>&1; cat $OUT/device.txt
python3 scripts/mlp_ab.py --kinds gelu,gelu2,gelu_768 --m 8,16,32,50,64 --rounds 7 $H $D --json $OUT/ab_dchain.json > $OUT/ab_dchain.txt 2>&1
python3 scripts/ab_verdict.py $OUT/ab_dchain.json --json $OUT/ab_dchain_verdict.json | tail -20
GPU_CHECK_SUMMARY=1 OUT=$OUT/check_dchain timeout 200 bash scripts/gpu_check.sh $D tests/test_kernels_gpu.py
PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout 120 compute-sanitizer --tool memcheck python3 scripts/memcheck_sweep.py --build $D --kinds gelu,gelu2,gelu_768 --paths auto,tensor_core_swap_ab --m 8,17,50,64 > $OUT/memcheck_dchain.txt 2>&1
tail -2 $OUT/memcheck_dchain.txt
