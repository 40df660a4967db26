# Call 13 (~5 min; carry .whl, .gpu-tune/head/$T rebuilt from this tree): call 11 again on
# the exact tree of the thirty-sixth session's end (its last change, the MLP endpoints'
# shared call flow `_run_mlp`, came after call 12's suite): the GPU suite and the host
# time per call with the checks first and deferred, twice, alternating (that host's
# timings moved by up to 2x). Then the full benchmark, and the rows that read at parity in
# call 12's full run timed alone (the power-state question).
bash benchmarks/plans/call11_deferred_checks.sh
set -x
export PYTHONPATH=$PWD/cli
T=torch211-cxx11-cu130-x86_64-linux
H=.gpu-tune/head/$T
python3 benchmarks/bench_mlp.py --build $H --out $OUT/bench > $OUT/bench.log 2>&1
tail -30 $OUT/bench/bench_mlp.md
python3 benchmarks/bench_mlp.py --build $H --out $OUT/parity --shapes llama8b-swiglu,siglip-gelu --m 512,2048 --skip bf16,split,quant > $OUT/parity.log 2>&1
tail -6 $OUT/parity/bench_mlp.md
