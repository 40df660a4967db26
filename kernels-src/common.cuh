// Small device helpers shared by every kernel family.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>

namespace static_fp8_mlp {

#define SFM_DEVICE __device__ __forceinline__

template <typename T>
SFM_DEVICE T ceil_div(T a, T b) {
  return (a + b - 1) / b;
}

inline int64_t host_ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// log2 of a power of two (kernel parameters that replace divisions by shifts).
inline int host_log2_pow2(int v) {
  int l = 0;
  while ((1 << l) < v) ++l;
  return l;
}

// 1 / y by the hardware approximation (within 1 ulp; denormal inputs read as 0), with
// none of the slow-path branch __frcp_rn carries.
SFM_DEVICE float fast_rcp(float y) {
  float r;
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(y));
  return r;
}

// Programmatic dependent launches (sm_90+; see launch_maybe_programmatic below).
// pdl_wait: hold until the grid before this one on the stream has completed and its
// writes are visible. pdl_trigger: let the grid after this one launch now; its own
// pdl_wait still waits for this grid to complete.
SFM_DEVICE void pdl_wait() { asm volatile("griddepcontrol.wait;\n" ::: "memory"); }
SFM_DEVICE void pdl_trigger() { asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory"); }

// Loads that must not be cached in L1 (streamed once) use the .cg / no-allocate hints
// through cp.async or __ldg on read-only data; plain vector types are enough here.
struct alignas(16) Vec16 {
  uint32_t w[4];
};
struct alignas(8) Vec8 {
  uint32_t w[2];
};

// Raises a kernel's dynamic shared-memory limit once per device (a per-instantiation
// bit mask: kernels live in per-TU anonymous namespaces, so each has its own). Setting
// a function attribute is not a stream operation, so this is legal during graph
// capture, which keeps the very first call capturable.
template <auto Kernel>
cudaError_t allow_dynamic_smem(int bytes) {
  static std::atomic<uint64_t> done{0};
  int dev = 0;
  cudaError_t e = cudaGetDevice(&dev);
  if (e != cudaSuccess) return e;
  const uint64_t bit = 1ull << (dev & 63);
  if (done.load(std::memory_order_acquire) & bit) return cudaSuccess;
  e = cudaFuncSetAttribute(Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
  if (e == cudaSuccess) done.fetch_or(bit, std::memory_order_acq_rel);
  return e;
}

// Launches `kernel` with `smem` bytes of dynamic shared memory on `stream`; with
// `programmatic`, as a programmatic dependent launch (sm_90+): its CTAs may then be
// scheduled while the kernel before it runs, so `kernel` must run griddepcontrol.wait
// before reading anything that kernel wrote, or writing anything it reads. (Also used by
// the standalone probes in benchmarks/.)
template <typename... Params, typename... Args>
cudaError_t launch_maybe_programmatic_smem(void (*kernel)(Params...), dim3 grid, dim3 block,
                                           size_t smem, bool programmatic, cudaStream_t stream,
                                           Args... args) {
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  config.attrs = attr;
  config.numAttrs = programmatic ? 1 : 0;
  return cudaLaunchKernelEx(&config, kernel, static_cast<Params>(args)...);
}

// The same without dynamic shared memory.
template <typename... Params, typename... Args>
cudaError_t launch_maybe_programmatic(void (*kernel)(Params...), dim3 grid, dim3 block,
                                      bool programmatic, cudaStream_t stream, Args... args) {
  return launch_maybe_programmatic_smem(kernel, grid, block, 0, programmatic, stream, args...);
}

// Clusters of `cluster` CTAs of `Kernel` (`threads` threads and `smem` bytes of dynamic
// shared memory each) that fit on device `dev`, the current one, at once. GPCs do not
// divide evenly into clusters: 30 clusters of 4 on a 132-SM H200, not 33. A persistent
// or cluster-split grid must not exceed it, or the clusters past it start only when others
// finish. Cached per device and cluster size (1 to 8); `fallback` where the query fails
// (cached too when > 0).
template <auto Kernel>
int max_active_clusters(int dev, int cluster, int threads, int smem, int fallback) {
  static std::atomic<int> cache[64][8];
  std::atomic<int>& entry = cache[dev & 63][std::min(std::max(cluster, 1), 8) - 1];
  int n = entry.load(std::memory_order_relaxed);
  if (n > 0) return n;
  const bool attr_ok = allow_dynamic_smem<Kernel>(smem) == cudaSuccess;
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(static_cast<unsigned>(cluster), 1, 1);
  config.blockDim = dim3(static_cast<unsigned>(threads), 1, 1);
  config.dynamicSmemBytes = static_cast<size_t>(smem);
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = static_cast<unsigned>(cluster);
  attr[0].val.clusterDim.y = 1;
  attr[0].val.clusterDim.z = 1;
  config.attrs = attr;
  config.numAttrs = 1;
  if (!attr_ok || cudaOccupancyMaxActiveClusters(&n, Kernel, &config) != cudaSuccess || n <= 0) {
    (void)cudaGetLastError();  // not sticky: leave no error for the next launch check
    n = fallback;
  }
  if (n > 0) entry.store(n, std::memory_order_relaxed);
  return n;
}

// Number of multiprocessors of the current device, cached per device (a device query
// per launch is too slow; a process-global int would be wrong with several GPUs).
int sm_count(int device);

// Shared memory one CTA may opt in to on a device (sm_90: 227 KB, sm_89: 99 KB), cached
// per device the same way.
int smem_per_block_optin(int device);

}  // namespace static_fp8_mlp
