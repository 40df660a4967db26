// Tensor-memory-accelerator (TMA) plumbing shared by the sm_90+ kernels: mbarrier and
// bulk-tensor-copy PTX, and host-side tensor maps. The bulk copy engine keeps far
// more bytes in flight per multiprocessor than per-thread loads can, which is what
// weight streaming needs.
#pragma once

#include <cuda.h>
#include <cudaTypedefs.h>

#include <cstdint>

#include "common.cuh"

namespace static_fp8_mlp {
namespace {
namespace tma {

// ---------------------------------------------------------------- PTX wrappers

SFM_DEVICE uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

SFM_DEVICE void mbar_init(uint64_t* bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_u32(bar)), "r"(count));
}

SFM_DEVICE void mbar_expect_tx(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_u32(bar)),
               "r"(bytes)
               : "memory");
}

SFM_DEVICE void mbar_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(smem_u32(bar)) : "memory");
}

SFM_DEVICE void mbar_wait(uint64_t* bar, uint32_t parity) {
  asm volatile(
      "{\n"
      ".reg .pred done;\n"
      "WAIT_%=:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WAIT_%=;\n"
      "}\n" ::"r"(smem_u32(bar)),
      "r"(parity)
      : "memory");
}

// Thread-block clusters: this CTA's rank, the address that `addr` of this CTA's shared
// memory has in CTA `rank` of the cluster, and a cluster-wide barrier (every thread of
// every CTA; release/acquire: memory operations before it are visible after it).
SFM_DEVICE uint32_t cluster_rank() {
  uint32_t r;
  asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(r));
  return r;
}

SFM_DEVICE uint32_t peer_smem(uint32_t addr, uint32_t rank) {
  uint32_t remote;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(remote) : "r"(addr), "r"(rank));
  return remote;
}

SFM_DEVICE void cluster_sync() {
  asm volatile(
      "barrier.cluster.arrive.release.aligned;\n"
      "barrier.cluster.wait.acquire.aligned;\n" ::: "memory");
}

// A cluster barrier that orders nothing: for keeping shared memory alive until every
// peer has used what it loaded from it (a load is complete once its value is used).
// The release form would also wait for this CTA's outstanding global stores.
SFM_DEVICE void cluster_sync_relaxed() {
  asm volatile(
      "barrier.cluster.arrive.relaxed.aligned;\n"
      "barrier.cluster.wait.aligned;\n" ::: "memory");
}

// 16 bytes of CTA `rank`'s shared memory at the address `addr` has in this CTA.
SFM_DEVICE float4 load_peer(uint32_t addr, int rank) {
  const uint32_t remote = peer_smem(addr, static_cast<uint32_t>(rank));
  float4 v;
  // volatile: stays after the cluster barrier (an asm with a memory clobber).
  asm volatile("ld.shared::cluster.v4.f32 {%0, %1, %2, %3}, [%4];\n"
               : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w)
               : "r"(remote));
  return v;
}

// Arrives on the barrier at `bar` in CTA `rank` of the cluster (this CTA's included).
// Release at CTA scope, as for a local arrive: what it orders is this thread's reads of
// the stage, which are complete. A cluster-scope release here costs a fence per stage in
// the consumers' critical path (2.4x slower GEMMs, H200).
SFM_DEVICE void mbar_arrive_cluster(uint64_t* bar, uint32_t rank) {
  asm volatile("mbarrier.arrive.shared::cluster.b64 _, [%0];\n" ::"r"(
                   peer_smem(smem_u32(bar), rank))
               : "memory");
}

// Fetches a tensor map (a __grid_constant__ kernel parameter) into the descriptor cache
// ahead of the first load that uses it.
SFM_DEVICE void prefetch_tensormap(const CUtensorMap* map) {
  asm volatile("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<uint64_t>(map)) : "memory");
}

// A TMA ring's barriers, by one thread before any load: full[s] completes on one
// arrival (the producer's expect_tx) plus the stage's bytes, empty[s] on `consumers`
// arrivals. The fence makes them visible to the async proxy and the cluster; then both
// tensor maps are fetched.
SFM_DEVICE void init_ring(uint64_t* full, uint64_t* empty, int stages, uint32_t consumers,
                          const CUtensorMap* map_x, const CUtensorMap* map_w) {
  for (int s = 0; s < stages; ++s) {
    mbar_init(&full[s], 1);
    mbar_init(&empty[s], consumers);
  }
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  prefetch_tensormap(map_x);
  prefetch_tensormap(map_w);
}

SFM_DEVICE void tma_load_2d(void* dst, const CUtensorMap* map, uint64_t* bar, int c0, int c1) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes"
      " [%0], [%1, {%3, %4}], [%2];\n" ::"r"(smem_u32(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(smem_u32(bar)), "r"(c0), "r"(c1)
      : "memory");
}

// tma_load_2d into the same shared-memory offset of every CTA in `cta_mask` (cluster
// ranks), each of whose barriers at `bar`'s offset receives the bytes it got.
SFM_DEVICE void tma_load_2d_multicast(void* dst, const CUtensorMap* map, uint64_t* bar, int c0,
                                      int c1, uint16_t cta_mask) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes"
      ".multicast::cluster [%0], [%1, {%3, %4}], [%2], %5;\n" ::"r"(smem_u32(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(smem_u32(bar)), "r"(c0), "r"(c1), "h"(cta_mask)
      : "memory");
}

SFM_DEVICE void tma_load_3d(void* dst, const CUtensorMap* map, uint64_t* bar, int c0, int c1,
                            int c2) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes"
      " [%0], [%1, {%3, %4, %5}], [%2];\n" ::"r"(smem_u32(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(smem_u32(bar)), "r"(c0), "r"(c1), "r"(c2)
      : "memory");
}

SFM_DEVICE void tma_load_4d(void* dst, const CUtensorMap* map, uint64_t* bar, int c0, int c1,
                            int c2, int c3) {
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes"
      " [%0], [%1, {%3, %4, %5, %6}], [%2];\n" ::"r"(smem_u32(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(smem_u32(bar)), "r"(c0), "r"(c1), "r"(c2), "r"(c3)
      : "memory");
}

// cuTensorMapEncodeTiled through the runtime's driver entry point: no link-time
// dependency on libcuda (the Hub ABI rules allow only torch and its CUDA libraries).
inline PFN_cuTensorMapEncodeTiled_v12000 encode_fn() {
  static PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* ptr = nullptr;
    cudaDriverEntryPointQueryResult status{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &ptr, 12000,
                                         cudaEnableDefault, &status) != cudaSuccess ||
        status != cudaDriverEntryPointSuccess) {
      ptr = nullptr;
    }
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(ptr);
  }();
  return fn;
}

// Encodes a tensor map of bytes with the 128-byte swizzle, zero fill out of bounds.
inline CUresult encode_u8_swizzled(CUtensorMap* map, cuuint32_t rank, const uint8_t* base,
                                   const cuuint64_t* dims, const cuuint64_t* strides,
                                   const cuuint32_t* box) {
  const cuuint32_t elem_strides[4] = {1, 1, 1, 1};
  return encode_fn()(map, CU_TENSOR_MAP_DATA_TYPE_UINT8, rank, const_cast<uint8_t*>(base), dims,
                     strides, box, elem_strides, CU_TENSOR_MAP_INTERLEAVE_NONE,
                     CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                     CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
}

// A [rows, k] FP8 row-major matrix, loaded in boxes of box_rows x box_k bytes (box_k <= 128
// for the 128-byte swizzle). row_pitch: bytes from one row to the next (0: k; a multiple
// of 16 and at least k). Bytes past k in a row are never read: boxes reaching past k are
// zero-filled.
inline cudaError_t make_tma(CUtensorMap* map, const uint8_t* base, int64_t rows, int64_t k,
                            int box_rows, int box_k, int64_t row_pitch = 0) {
  const auto encode = encode_fn();
  if (encode == nullptr) return cudaErrorNotSupported;
  if (row_pitch == 0) row_pitch = k;
  if (row_pitch < k || row_pitch % 16 != 0) return cudaErrorInvalidValue;
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(k), static_cast<cuuint64_t>(rows)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(row_pitch)};
  const cuuint32_t box[2] = {static_cast<cuuint32_t>(box_k), static_cast<cuuint32_t>(box_rows)};
  return encode_u8_swizzled(map, 2, base, dims, strides, box) == CUDA_SUCCESS
             ? cudaSuccess
             : cudaErrorInvalidValue;
}

// The same matrix seen as [k / 128][rows][128 bytes] (dims innermost first: byte in a
// 128-byte block, row, block), so one box of box_rows x box_blocks lands in shared memory
// as box_blocks consecutive [box_rows][128] swizzled blocks: a whole pipeline stage in
// one bulk copy instead of one per block (small boxes leave the copy engine short of
// bytes in flight). Needs k % 128 == 0: the innermost extent is a whole block.
inline cudaError_t make_tma_blocks(CUtensorMap* map, const uint8_t* base, int64_t rows, int64_t k,
                                   int box_rows, int box_blocks) {
  const auto encode = encode_fn();
  if (encode == nullptr || k % 128 != 0) return cudaErrorNotSupported;
  const cuuint64_t dims[3] = {128, static_cast<cuuint64_t>(rows), static_cast<cuuint64_t>(k / 128)};
  const cuuint64_t strides[2] = {static_cast<cuuint64_t>(k), 128};
  const cuuint32_t box[3] = {128, static_cast<cuuint32_t>(box_rows),
                             static_cast<cuuint32_t>(box_blocks)};
  return encode_u8_swizzled(map, 3, base, dims, strides, box) == CUDA_SUCCESS
             ? cudaSuccess
             : cudaErrorNotSupported;
}

// The [2 * rows, k] gate-then-up weights of a gated GEMM seen as [k / 128][2][rows][128
// bytes] (dims innermost first: byte, row, half, block): one box of box_rows x 2 x box_blocks
// lands as box_blocks consecutive blocks, each box_rows gate rows followed by the same
// box_rows up rows, so that one 64-row wgmma operand covers both (uniform 1024-byte
// stride between 8-row atoms). Needs k % 128 == 0.
inline cudaError_t make_tma_gated_blocks(CUtensorMap* map, const uint8_t* base, int64_t rows,
                                         int64_t k, int box_rows, int box_blocks) {
  const auto encode = encode_fn();
  if (encode == nullptr || k % 128 != 0) return cudaErrorNotSupported;
  const cuuint64_t dims[4] = {128, static_cast<cuuint64_t>(rows), 2,
                              static_cast<cuuint64_t>(k / 128)};
  const cuuint64_t strides[3] = {static_cast<cuuint64_t>(k), static_cast<cuuint64_t>(rows * k),
                                 128};
  const cuuint32_t box[4] = {128, static_cast<cuuint32_t>(box_rows), 2,
                             static_cast<cuuint32_t>(box_blocks)};
  return encode_u8_swizzled(map, 4, base, dims, strides, box) == CUDA_SUCCESS
             ? cudaSuccess
             : cudaErrorNotSupported;
}

}  // namespace tma
}  // namespace
}  // namespace static_fp8_mlp
