# Call 36 (thirty-ninth session; ~1.5 min; carry .whl, .gpu-tune/head/$T): the registry's
# GPU tests and the fused-module host time after this session's registry change (the
# input checks read `is_cuda` / `get_device()` on CUDA tensors, a branch the CPU suite
# cannot reach), with the real kernels.
set -x
export PYTHONPATH=$PWD/cli
T=torch211-cxx11-cu130-x86_64-linux
H=.gpu-tune/head/$T
GPU_CHECK_SUMMARY=1 OUT=$OUT/check_registry timeout 150 bash scripts/gpu_check.sh $H tests/test_registry_gpu.py tests/test_kernels_gpu.py -k "registry or capture"
# gpu_check.sh installed the carried wheels (pydantic) into /tmp/sfm-site; the bench needs them too
# (its first run in this call failed without them).
[ -d /tmp/sfm-site ] || python3 -m pip install -q --no-index --no-deps --target /tmp/sfm-site .whl/*.whl
PYTHONPATH=/tmp/sfm-site:$PYTHONPATH python3 benchmarks/bench_fused_overhead.py --device cuda --build $H --out $OUT/overhead > $OUT/overhead.log 2>&1
tail -12 $OUT/overhead.log
