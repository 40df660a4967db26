// Small device helpers shared by every kernel family.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace static_fp8_mlp {

#define SFM_DEVICE __device__ __forceinline__

template <typename T>
SFM_DEVICE T ceil_div(T a, T b) {
  return (a + b - 1) / b;
}

inline int64_t host_ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Loads that must not be cached in L1 (streamed once) use the .cg / no-allocate hints
// through cp.async or __ldg on read-only data; plain vector types are enough here.
struct alignas(16) Vec16 {
  uint32_t w[4];
};
struct alignas(8) Vec8 {
  uint32_t w[2];
};

// Number of multiprocessors of the current device, cached per device (a device query
// per launch is too slow; a process-global int would be wrong with several GPUs).
int sm_count(int device);

}  // namespace static_fp8_mlp
