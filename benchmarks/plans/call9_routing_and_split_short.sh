# OBSOLETE since the thirty-sixth session: calls 7 and 8 ran in full (RESULTS.md).
# Call 9 (one device call, <= 560 s; carry .whl, .gpu-tune/{head,l2r40,usk}/$T): the
# essentials of calls 7 and 8 for a session that gets one short window (the thirty-second
# session lost 751 s to ten failed starts). In order of what matters: head's GPU suite (the
# owed check of the landed L2 routing), memcheck of head's new auto picks, the A/B of the
# routing against l2r40 and of usk against head (mlp_ab contract-checks every output:
# "ok"), memcheck of usk's split path. Each step has its own time limit so that a slow one
# costs only itself; the full calls 7 and 8 remain the complete versions.
set -x
export PYTHONPATH=$PWD/cli
T=torch211-cxx11-cu130-x86_64-linux
H=.gpu-tune/head/$T; R=.gpu-tune/l2r40/$T; U=.gpu-tune/usk/$T
OUT=$OUT/check_head timeout 220 bash scripts/gpu_check.sh $H tests/test_kernels_gpu.py tests/test_registry_gpu.py > /dev/null 2>&1
tail -3 $OUT/check_head/gpu-tests.log
PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout 60 compute-sanitizer --tool memcheck python3 scripts/memcheck_sweep.py --build $H --kinds gelu,gelu2,gelu_768 --paths auto --m 8,16,33 > $OUT/memcheck_l2.txt 2>&1
tail -1 $OUT/memcheck_l2.txt
timeout 100 python3 scripts/mlp_ab.py --kinds gelu,gelu2,gelu_768,gelu_1536_4304 --m 8,16,24,33,40 --rounds 5 $R $H --json $OUT/ab_l2.json > $OUT/ab_l2.txt 2>&1
python3 scripts/ab_verdict.py $OUT/ab_l2.json --json $OUT/ab_l2_verdict.json
timeout 100 python3 scripts/mlp_ab.py --kinds gelu,gelu2,gelu_768,gelu_1536_4304 --m 8,16,32,50,64 --rounds 5 $H $U --json $OUT/ab_usk.json > $OUT/ab_usk.txt 2>&1
cat $OUT/ab_usk.txt; python3 scripts/ab_verdict.py $OUT/ab_usk.json --json $OUT/ab_usk_verdict.json
PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout 60 compute-sanitizer --tool memcheck python3 scripts/memcheck_sweep.py --build $U --kinds gelu,gelu2 --paths auto --m 8,50 > $OUT/memcheck_usk.txt 2>&1
tail -1 $OUT/memcheck_usk.txt
