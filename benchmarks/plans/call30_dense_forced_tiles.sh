# Call 30 (thirty-ninth session; ~1 min; carry .whl, .gpu-tune/head/$T): the dense
# 1152x4304 MLP at 50-128 tokens with the up GEMM forced onto the tall wgmma tiles of 128
# tokens x 64 weight rows (68 CTAs that read each weight row once, against auto's 64-token
# tiles of 128 rows, whose two token tiles each read all weights at M > 64: 15 against
# 10 MB through L2 at M = 128, call 28's ncu) or 128 rows, and the down GEMM forced onto
# the split-K wgmma tiles over a workspace: whole MLPs, 7 rounds, contract-checked.
set -x
export PYTHONPATH=$PWD/cli
T=torch211-cxx11-cu130-x86_64-linux
H=.gpu-tune/head/$T
nvidia-smi --query-gpu=name --format=csv,noheader > $OUT/device.txt 2>&1; cat $OUT/device.txt
python3 scripts/mlp_ab.py --kinds gelu,gelu2 --m 50,64,65,96,128 --rounds 7 \
  $H $H:tensor_core_tall_64/auto $H:tensor_core_tall_128/auto $H:auto/tensor_core_split_k \
  $H:tensor_core_tall_64/tensor_core_split_k --json $OUT/ab_dense_tiles.json > $OUT/ab_dense_tiles.txt 2>&1
tail -3 $OUT/ab_dense_tiles.txt
python3 scripts/ab_verdict.py $OUT/ab_dense_tiles.json --json $OUT/ab_dense_tiles_verdict.json | tail -60
