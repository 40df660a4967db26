# Call 16 (ran in the thirty-seventh session on an H100, 100 s; carry .whl, .gpu-tune/head/$T = this tree's kernels): the full
# benchmark once more on whichever card comes (an H200 run of this tree's kernels is
# owed: the README's H200 table is the thirtieth session's; it came on an H100, so that is
# still owed), then the dense 1152x4304
# rows at 16-128 tokens twice more, for their spread against the 1.8x target.
set -x
export PYTHONPATH=$PWD/cli
T=torch211-cxx11-cu130-x86_64-linux
H=.gpu-tune/head/$T
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv > $OUT/device.txt 2>&1; cat $OUT/device.txt
python3 benchmarks/bench_mlp.py --build $H --out $OUT/bench > $OUT/bench.log 2>&1
tail -30 $OUT/bench/bench_mlp.md
for r in 1 2; do
  python3 benchmarks/bench_mlp.py --build $H --out $OUT/dense_$r --shapes siglip-gelu --m 16,50,128 --skip bf16,split,quant > $OUT/dense_$r.log 2>&1
  tail -3 $OUT/dense_$r/bench_mlp.md
done
