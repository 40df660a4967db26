# Call 7 (~6 min; carry .whl, .gpu-tune/{head,l2r40}/$T): the thirtieth session's
# routing of L2-resident GEMMs (a dense MLP's up GEMM on the swap-AB kernel from 8 tokens,
# both GEMMs from 33) and the thirty-first's (SigLIP's 1152x4304 down GEMM, K unaligned,
# from 8 too; l2r40 = the routing before both, from 40) were landed on forced-path
# measurements of the same kernels (results/dense_swap_*_thirtieth.*); no device was
# lent to run the auto build itself. Its full GPU suite, the A/B at M = 1-50 over four
# dense shapes (with head's forced swap-AB pair for 1152x4304, which auto now is at
# 8-64: the two should read even), memcheck of the new auto picks, and the benchmark.
set -x
export PYTHONPATH=$PWD/cli
T=torch211-cxx11-cu130-x86_64-linux
H=.gpu-tune/head/$T; R=.gpu-tune/l2r40/$T
OUT=$OUT/check_head bash scripts/gpu_check.sh $H tests/test_kernels_gpu.py tests/test_registry_gpu.py tests/test_bench_report.py > /dev/null 2>&1
tail -3 $OUT/check_head/gpu-tests.log
python3 scripts/mlp_ab.py --kinds gelu,gelu2,gelu_768,gelu_1536_4304 --m 1,8,9,12,16,17,24,25,32,33,36,39,40,50 --rounds 7 $R $H --json $OUT/ab_l2.json > $OUT/ab_l2.txt 2>&1
python3 scripts/ab_verdict.py $OUT/ab_l2.json --json $OUT/ab_l2_verdict.json
python3 scripts/mlp_ab.py --kinds gelu --m 8,9,16,17,24,32,33,50 --rounds 7 $H $H:tensor_core_swap_ab/tensor_core_swap_ab --json $OUT/ab_forced.json > $OUT/ab_forced.txt 2>&1
PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --tool memcheck python3 scripts/memcheck_sweep.py --build $H --kinds gelu,gelu2,gelu_768 --paths auto --m 8,9,16,24,33,39 > $OUT/memcheck_l2.txt 2>&1
tail -1 $OUT/memcheck_l2.txt
python3 benchmarks/bench_mlp.py --build $H --out $OUT/bench > $OUT/bench.log 2>&1
tail -40 $OUT/bench/bench_mlp.md
