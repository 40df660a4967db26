# Call 11 (~4 min; carry .whl, .gpu-tune/head/$T rebuilt after the thirty-sixth session):
# the endpoints' Python checks deferred until the op refuses (eager CUDA calls, no `out`).
# The GPU suite on it (every endpoint call in it now takes that path, and
# test_argument_errors_on_cuda_name_the_argument checks that the CPU error tables read the
# same on CUDA), then the host time per call with the checks first (the previous rule) and
# deferred, twice each, alternating.
set -x
export PYTHONPATH=$PWD/cli
T=torch211-cxx11-cu130-x86_64-linux
H=.gpu-tune/head/$T
GPU_CHECK_SUMMARY=1 OUT=$OUT/check_head bash scripts/gpu_check.sh $H tests/test_kernels_gpu.py tests/test_registry_gpu.py
export PYTHONPATH=/tmp/sfm-site:$PYTHONPATH
for r in 1 2; do
  python3 benchmarks/bench_fused_overhead.py --device cuda --build $H --m 1,16,128 --checks-first --out $OUT/overhead_first_$r 2>&1 | tail -14
  python3 benchmarks/bench_fused_overhead.py --device cuda --build $H --m 1,16,128 --out $OUT/overhead_deferred_$r 2>&1 | tail -14
done
