# Call 3 (~5 min; carry .gpu-tune/{head,eparam,hidact,eidact,afg3}/$T):
# per-kernel times at M = 2048 / 8192 of head, eparam and both with the identity
# activation (a probe: wrong results; sizes the activation's share of each GEMM); the
# A/B with per-row (channel-wise) weight scales, where head's epilogue loads two scales
# per column pair; head against afg3 (the fifth stage with a first group of 3 K tiles).
set -x
export PYTHONPATH=$PWD/cli
T=torch211-cxx11-cu130-x86_64-linux
H=.gpu-tune/head/$T; E=.gpu-tune/eparam/$T; HI=.gpu-tune/hidact/$T; EI=.gpu-tune/eidact/$T
for b in $H $E $HI $EI; do echo "== $b"; python3 scripts/kernel_grids.py --build $b --kinds gelu,gelu2,geglu,swiglu --m 2048,8192 --paths auto 2>&1 | grep -v "Warn\|warn_once"; done > $OUT/grids.txt 2>&1
cat $OUT/grids.txt
python3 scripts/mlp_ab.py --per-row --kinds gelu,geglu,swiglu --m 2048,8192 --rounds 7 $H $E --json $OUT/ab_per_row.json > $OUT/ab_per_row.txt 2>&1
cat $OUT/ab_per_row.txt; python3 scripts/ab_verdict.py $OUT/ab_per_row.json
python3 scripts/mlp_ab.py --kinds gelu,gelu2,geglu,swiglu --m 2048,8192 --rounds 7 $H .gpu-tune/afg3/$T --json $OUT/ab_afg3.json > $OUT/ab_afg3.txt 2>&1
cat $OUT/ab_afg3.txt; python3 scripts/ab_verdict.py $OUT/ab_afg3.json
