# Call 5 (~2 min; carry .gpu-tune/head/$T): the benchmark with
# per-row (channel-wise) weight scales (29th session's --per-row: ours on the per-row
# epilogue path; the split paths on torch._scaled_mm's row-wise mode), beside the
# per-tensor default, the same build and process kind. Neither had been timed before.
# Ran in the thirtieth session: results/bench_mlp_per_row_h200_2026-12-05_thirtieth.* (on the landed kernels)
set -x
export PYTHONPATH=$PWD/cli
T=torch211-cxx11-cu130-x86_64-linux
python3 benchmarks/bench_mlp.py --build .gpu-tune/head/$T --out $OUT/bench_per_row --per-row > $OUT/bench_per_row.txt 2>&1
tail -40 $OUT/bench_per_row/bench_mlp.md
