# Call 1 (~7 min; carry .whl, from scripts/fetch_device_wheels.sh, and
# .gpu-tune/{head,eparam,astage,esg}/$T). head = the release kernels (cubin-identical from
# 621cd1d to HEAD; 8aa2c6d's kernels never ran on a GPU): its full GPU suite; the experiments' kernel
# suites; byte equality with head for eparam and astage (both must be bit-identical;
# esg is not: it promotes the first 4 K tiles of a tile at once).
# Ran in the thirtieth session: results/gpu_tests_h200_2026-12-05_thirtieth.txt, build_equal_large_m_experiments_*
set -x
export PYTHONPATH=$PWD/cli
T=torch211-cxx11-cu130-x86_64-linux
H=.gpu-tune/head/$T
OUT=$OUT/check_head bash scripts/gpu_check.sh $H tests/test_kernels_gpu.py tests/test_registry_gpu.py tests/test_bench_report.py > /dev/null 2>&1
tail -3 $OUT/check_head/gpu-tests.log
for v in eparam astage esg; do
  OUT=$OUT/check_$v bash scripts/gpu_check.sh .gpu-tune/$v/$T tests/test_kernels_gpu.py > /dev/null 2>&1
  tail -3 $OUT/check_$v/gpu-tests.log
done
for v in eparam astage; do
  python3 scripts/build_equal.py $H .gpu-tune/$v/$T --m 1,64,65,200,1001,2049,4097 \
    --paths auto,tensor_core_tma,tensor_core_tall_128,tensor_core_tall_192,tensor_core_tall_64,tensor_core_split_k > $OUT/equal_$v.txt 2>&1
  tail -1 $OUT/equal_$v.txt; grep FAIL $OUT/equal_$v.txt | head -5
done
