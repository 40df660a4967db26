# Call 33 (thirty-ninth session; ~2 min; carry .whl, .gpu-tune/head/$T): the kernel and
# registry suites on this session's head, on the H200 (the last H200 suite ran the
# thirtieth session's kernels).
set -x
export PYTHONPATH=$PWD/cli
T=torch211-cxx11-cu130-x86_64-linux
H=.gpu-tune/head/$T
GPU_CHECK_SUMMARY=1 OUT=$OUT/check_head timeout 240 bash scripts/gpu_check.sh $H tests/test_kernels_gpu.py tests/test_registry_gpu.py
