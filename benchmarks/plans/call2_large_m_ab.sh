# Call 2 (~7 min; carry .gpu-tune/{head,eparam,astage,esg}/$T):
# whole-MLP A/B of the experiments against head (large M: the wgmma kernel; esg = the
# early second wgmma group), each also checked against the contract; then memcheck of
# eparam, astage and esg. (aesg, esg with the fifth stage, does not fit in the same
# 64 MiB carry as the tree and four builds: A/B it in a call of its own.)
# Ran in the thirtieth session: results/large_m_experiments_ab_h200_2026-12-05_thirtieth.*
set -x
export PYTHONPATH=$PWD/cli
T=torch211-cxx11-cu130-x86_64-linux
V="head eparam astage esg"
python3 scripts/mlp_ab.py --kinds gelu,gelu2,gelu_1536_4304,geglu,swiglu --m 129,512,1024,2048,4096,8192 --rounds 9 $(for v in $V; do echo .gpu-tune/$v/$T; done) --json $OUT/ab.json > $OUT/ab.txt 2>&1
cat $OUT/ab.txt; python3 scripts/ab_verdict.py $OUT/ab.json --json $OUT/ab_verdict.json
for v in eparam astage esg; do
  PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --tool memcheck python3 scripts/memcheck_sweep.py --build .gpu-tune/$v/$T --kinds gelu,geglu --paths auto,tensor_core_tall_192,tensor_core_tall_128 --m 65,1001,2049 > $OUT/memcheck_$v.txt 2>&1
  tail -3 $OUT/memcheck_$v.txt
done
