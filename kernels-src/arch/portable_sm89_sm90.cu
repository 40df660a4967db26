// Portable kernels compiled for Ada (8.9) and Hopper (9.0a).
#include "portable_backend.cuh"

SFM_REGISTER_PORTABLE_BACKEND(portable_sm89_sm90)
