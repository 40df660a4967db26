# Call 12 (~5 min; carry .whl, .gpu-tune/{head,eupk}/$T): eupk = this tree after the
# thirty-sixth session (a dense MLP's up GEMM on the swap-AB kernel from 8 tokens only
# where K <= 1152; Python checks deferred until the op refuses); head = the thirty-fifth
# session's kernels with the deferred checks' __init__.py copied in (call 11). The A/B of
# the routing over the four dense shapes at 1-40 tokens (H100: 1536x6144 was slower at
# 9-32 with the up GEMM early), the GPU suite on eupk, the host time per call (checks
# first, then deferred), and the benchmark on eupk.
set -x
export PYTHONPATH=$PWD/cli
T=torch211-cxx11-cu130-x86_64-linux
H=.gpu-tune/head/$T; E=.gpu-tune/eupk/$T
python3 scripts/mlp_ab.py --kinds gelu,gelu2,gelu_768,gelu_1536_4304 --m 1,8,9,16,17,24,25,32,33,40 --rounds 7 $H $E --json $OUT/ab_eupk.json > $OUT/ab_eupk.txt 2>&1
python3 scripts/ab_verdict.py $OUT/ab_eupk.json --json $OUT/ab_eupk_verdict.json | tail -45
OUT=$OUT/check_eupk bash scripts/gpu_check.sh $E tests/test_kernels_gpu.py tests/test_registry_gpu.py > /dev/null 2>&1
tail -3 $OUT/check_eupk/gpu-tests.log
export PYTHONPATH=/tmp/sfm-site:$PYTHONPATH
python3 benchmarks/bench_fused_overhead.py --device cuda --build $E --checks-first --out $OUT/overhead_first 2>&1 | tail -10
python3 benchmarks/bench_fused_overhead.py --device cuda --build $E --out $OUT/overhead_deferred 2>&1 | tail -10
python3 benchmarks/bench_mlp.py --build $E --out $OUT/bench > $OUT/bench.log 2>&1
tail -30 $OUT/bench/bench_mlp.md
# SigLIP's 1152x4304 at M = 512 read 1.00x torch.compile on the H100 in call 7 (H200:
# 1.09x and up): every forced path pair there and around it, with compile for reference.
python3 benchmarks/bench_mlp.py --build $E --out $OUT/paths512 --shapes siglip-gelu --m 384,512,768 --compare-paths --skip bf16,split,ours_quant,quant > $OUT/paths512.log 2>&1
tail -25 $OUT/paths512/bench_mlp.md
