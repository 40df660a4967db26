// Shared-memory ring primitives for the standalone probes in this directory: the
// package's own mbarrier and TMA wrappers (kernels-src/tma_util.cuh), plus the 1-D bulk
// copy into shared memory, which the package does not use.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "../kernels-src/tma_util.cuh"

using namespace static_fp8_mlp::tma;

__device__ __forceinline__ void bulk1d(void* dst, const void* src, uint32_t bytes, uint64_t* b) {
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(
          smem_u32(dst)),
      "l"(src), "r"(bytes), "r"(smem_u32(b)) : "memory");
}
