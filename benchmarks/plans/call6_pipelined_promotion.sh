# Call 6 (~6 min; carry .gpu-tune/{head,spp}/$T): the swap-AB
# kernel's pipelined promotion (29th session; spp = HEAD with
# '#define SFM_SWAP_PIPELINED_PROMOTE_TOKENS 128': one promotion group stays in flight
# while the next is issued, token tiles up to 128). Must be byte-identical to head;
# then the decode / mid-M A/B where the swap-AB kernel runs (M = 1-192), 11 rounds.
# Ran in the thirtieth session: results/pipelined_promotion_*_h200_2026-12-05_thirtieth.* (landed for the 8-stage kernels only)
set -x
export PYTHONPATH=$PWD/cli
T=torch211-cxx11-cu130-x86_64-linux
H=.gpu-tune/head/$T; S=.gpu-tune/spp/$T
OUT=$OUT/check_spp bash scripts/gpu_check.sh $S tests/test_kernels_gpu.py > /dev/null 2>&1
tail -3 $OUT/check_spp/gpu-tests.log
python3 scripts/build_equal.py $H $S --m 1,5,16,33,50,64,65,100,128,129,192 \
  --paths auto,tensor_core_swap_ab,tensor_core_swap_ab_cluster > $OUT/equal_spp.txt 2>&1
tail -1 $OUT/equal_spp.txt; grep FAIL $OUT/equal_spp.txt | head -5
python3 scripts/mlp_ab.py --kinds geglu,swiglu,gelu,gelu2 --m 1,16,50,64,96,128,192 --rounds 11 $H $S --json $OUT/ab_spp.json > $OUT/ab_spp.txt 2>&1
cat $OUT/ab_spp.txt; python3 scripts/ab_verdict.py $OUT/ab_spp.json --json $OUT/ab_spp_verdict.json
PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --tool memcheck python3 scripts/memcheck_sweep.py --build $S --kinds gelu,geglu,swiglu --paths auto,tensor_core_swap_ab --m 1,50,100,192 > $OUT/memcheck_spp.txt 2>&1
tail -3 $OUT/memcheck_spp.txt
