# Call 10 (kind nvidia-h100-x2, or any lent kind with two GPUs; ~2 min; carry
# .gpu-tune/head/$T): the tests that need a second CUDA device, last run in the seventh
# session, before the swap-AB kernels, the cluster reductions and the programmatic
# launches existed. test_second_device (current device 0, tensors on device 1, now also
# GeGLU's decode paths from DRAM) and test_cuda_graph_capture_of_first_call_on_second_device
# (a process whose only CUDA work, its first call captured, is on device 1), with the
# single-device first-call capture cases (tests/capture_cases.py) beside them.
set -x
T=torch211-cxx11-cu130-x86_64-linux
H=.gpu-tune/head/$T
nvidia-smi -L
OUT=$OUT/check_second timeout 300 bash scripts/gpu_check.sh $H tests/test_kernels_gpu.py -k "second_device or first_call" > /dev/null 2>&1
tail -5 $OUT/check_second/gpu-tests.log
