# Call 18 (~2 min; carry .whl, .gpu-tune/head/$T rebuilt from HEAD with
# `bash benchmarks/plans/rebuild_variants.sh head`): the GPU suite, registry tests
# included, on HEAD's Python. The thirty-seventh session's review moved the input quant
# onto the MLP endpoints' call flow (2da3d46, `_run_endpoint`) after call 13's suite, so
# the op-first path on CUDA (test_argument_errors_on_cuda_name_the_argument) has not run
# with it yet.
set -x
export PYTHONPATH=$PWD/cli
T=torch211-cxx11-cu130-x86_64-linux
H=.gpu-tune/head/$T
GPU_CHECK_SUMMARY=1 OUT=$OUT/check_head bash scripts/gpu_check.sh $H tests/test_kernels_gpu.py tests/test_registry_gpu.py
