# Call 13 (~5 min; carry .whl, .gpu-tune/head/$T rebuilt from this tree): the GPU suite on
# the exact tree of the thirty-sixth session's end (its last change, the MLP endpoints'
# shared call flow `_run_mlp`, came after call 12's suite), the host time per call with
# the checks first and deferred (twice, alternating: that host's timings moved by up to
# 2x), the full benchmark, and the rows that read at parity in call 12's full run timed
# alone (the power-state question).
set -x
export PYTHONPATH=$PWD/cli
T=torch211-cxx11-cu130-x86_64-linux
H=.gpu-tune/head/$T
OUT=$OUT/check_head bash scripts/gpu_check.sh $H tests/test_kernels_gpu.py tests/test_registry_gpu.py > /dev/null 2>&1
tail -3 $OUT/check_head/gpu-tests.log
grep -E "FAILED|Error" $OUT/check_head/gpu-tests.log | head -20
export PYTHONPATH=/tmp/sfm-site:$PYTHONPATH
for r in 1 2; do
  python3 benchmarks/bench_fused_overhead.py --device cuda --build $H --checks-first --out $OUT/overhead_first_$r 2>&1 | tail -10
  python3 benchmarks/bench_fused_overhead.py --device cuda --build $H --out $OUT/overhead_deferred_$r 2>&1 | tail -10
done
python3 benchmarks/bench_mlp.py --build $H --out $OUT/bench > $OUT/bench.log 2>&1
tail -30 $OUT/bench/bench_mlp.md
python3 benchmarks/bench_mlp.py --build $H --out $OUT/parity --shapes llama8b-swiglu,siglip-gelu --m 512,2048 --skip bf16,split,quant > $OUT/parity.log 2>&1
tail -6 $OUT/parity/bench_mlp.md
