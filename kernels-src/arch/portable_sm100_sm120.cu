// Portable kernels compiled for Blackwell (10.0a datacenter, 12.0 consumer); needs
// CUDA >= 12.8, so build.toml guards its section with cuda-minver.
#include "portable_backend.cuh"

SFM_REGISTER_PORTABLE_BACKEND(portable_sm100_sm120)
