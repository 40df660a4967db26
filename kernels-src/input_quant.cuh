// Input quantisation: out[m, k] = q(input[m, k] * channel_scale[k] / scale).
//
// Byte-exact with the fp32 reference: one IEEE multiply (exact for bf16 x bf16), one
// IEEE division (__fdiv_rn, so even a fast-math build keeps it), then q(). Memory
// bound: the vector kernel moves 16 bytes of bf16 in and 8 bytes of FP8 out per
// chunk, several chunks per thread in flight. The scalar kernel handles any K,
// stride and alignment.
#pragma once

#include "backend_registry.h"
#include "common.cuh"
#include "fp8_convert.cuh"

// Internal linkage: every arch-group TU includes this file and must get its own copy
// (its own fatbin), never one merged by the linker with another group's.
namespace static_fp8_mlp {
namespace {
namespace input_quant {

constexpr int kElemsPerChunk = 8;     // 8 bf16 = 16 bytes
constexpr int kChunksPerThread = 4;   // independent loads in flight per thread (large M)
constexpr int kThreads = 256;

SFM_DEVICE float bf16_lo(uint32_t w) { return __uint_as_float(w << 16); }
SFM_DEVICE float bf16_hi(uint32_t w) { return __uint_as_float(w & 0xffff0000u); }

SFM_DEVICE float quant_value(float x, float cs, float scale) {
  return __fdiv_rn(__fmul_rn(x, cs), scale);
}

// Requires K % 8 == 0, row_stride % 8 == 0 and 16-byte aligned input/channel_scale,
// 8-byte aligned output.
// Index is uint32_t whenever the chunk count fits (the common case): 64-bit division
// per chunk would cost more than the memory traffic it serves.
// CPT chunks per thread: 4 keeps loads in flight on large inputs; small inputs (under a
// wave of 4-chunk threads) take one chunk per thread, so more SMs share the per-element
// work (an IEEE division each) instead of a few threads doing it serially.
template <typename Index, int CPT>
__global__ void __launch_bounds__(kThreads)
    quantize_vec_kernel(const uint16_t* __restrict__ input, int64_t row_stride,
                        const uint16_t* __restrict__ channel_scale,
                        const float* __restrict__ scale_ptr, uint8_t* __restrict__ out,
                        uint32_t chunks_per_row, Index total_chunks) {
  const float scale = __ldg(scale_ptr);
  const Index stride = static_cast<Index>(gridDim.x) * kThreads;
  Index base = static_cast<Index>(blockIdx.x) * kThreads * CPT + threadIdx.x;
  for (; base < total_chunks; base += stride * CPT) {
    int4 in[CPT];
    int4 cs[CPT];
    uint64_t row[CPT];
    uint32_t col[CPT];
#pragma unroll
    for (int i = 0; i < CPT; ++i) {
      const Index c = base + static_cast<Index>(i) * kThreads;
      if (c < total_chunks) {
        const Index r = c / chunks_per_row;
        row[i] = r;
        col[i] = static_cast<uint32_t>(c - r * chunks_per_row);
        // Streamed once: evict-first load; channel_scale is tiny and reused: read-only path.
        in[i] = __ldcs(reinterpret_cast<const int4*>(input + row[i] * row_stride) + col[i]);
        cs[i] = __ldg(reinterpret_cast<const int4*>(channel_scale) + col[i]);
      }
    }
#pragma unroll
    for (int i = 0; i < CPT; ++i) {
      const Index c = base + static_cast<Index>(i) * kThreads;
      if (c < total_chunks) {
        Vec8 q;
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          const uint32_t a0 = static_cast<uint32_t>(j == 0 ? in[i].x : in[i].z);
          const uint32_t a1 = static_cast<uint32_t>(j == 0 ? in[i].y : in[i].w);
          const uint32_t s0 = static_cast<uint32_t>(j == 0 ? cs[i].x : cs[i].z);
          const uint32_t s1 = static_cast<uint32_t>(j == 0 ? cs[i].y : cs[i].w);
          q.w[j] = q_quad(quant_value(bf16_lo(a0), bf16_lo(s0), scale),
                          quant_value(bf16_hi(a0), bf16_hi(s0), scale),
                          quant_value(bf16_lo(a1), bf16_lo(s1), scale),
                          quant_value(bf16_hi(a1), bf16_hi(s1), scale));
        }
        *reinterpret_cast<Vec8*>(out + (row[i] * chunks_per_row + col[i]) * kElemsPerChunk) = q;
      }
    }
  }
}

__global__ void __launch_bounds__(kThreads)
    quantize_scalar_kernel(const uint16_t* __restrict__ input, int64_t row_stride,
                           const uint16_t* __restrict__ channel_scale,
                           const float* __restrict__ scale_ptr, uint8_t* __restrict__ out,
                           int64_t k, uint64_t total) {
  const float scale = __ldg(scale_ptr);
  for (uint64_t i = static_cast<uint64_t>(blockIdx.x) * kThreads + threadIdx.x; i < total;
       i += static_cast<uint64_t>(gridDim.x) * kThreads) {
    const uint64_t row = i / k;
    const uint64_t col = i - row * k;
    const float x = __uint_as_float(static_cast<uint32_t>(input[row * row_stride + col]) << 16);
    const float cs = __uint_as_float(static_cast<uint32_t>(channel_scale[col]) << 16);
    out[i] = q_one(quant_value(x, cs, scale));
  }
}

inline bool aligned(const void* p, uintptr_t bytes) {
  return (reinterpret_cast<uintptr_t>(p) % bytes) == 0;
}

inline cudaError_t launch(const InputQuantArgs& a, cudaStream_t stream) {
  if (a.m == 0 || a.k == 0) return cudaSuccess;
  const int device_sms = [] {
    int dev = 0;
    cudaGetDevice(&dev);
    return sm_count(dev);
  }();
  const bool vec = a.k % kElemsPerChunk == 0 && a.row_stride % kElemsPerChunk == 0 &&
                   aligned(a.input, 16) && aligned(a.channel_scale, 16) && aligned(a.out, 8);
  if (vec) {
    const uint64_t total = static_cast<uint64_t>(a.m) * (a.k / kElemsPerChunk);
    const uint64_t cap = static_cast<uint64_t>(device_sms) * 8;
    const auto* in = static_cast<const uint16_t*>(a.input);
    const auto* cs = static_cast<const uint16_t*>(a.channel_scale);
    const auto chunks_per_row = static_cast<uint32_t>(a.k / kElemsPerChunk);
    const uint64_t one_wave = static_cast<uint64_t>(device_sms) * kThreads * kChunksPerThread;
    if (total <= one_wave) {  // small: one chunk per thread (32-bit indices suffice)
      const uint64_t want = (total + kThreads - 1) / kThreads;
      quantize_vec_kernel<uint32_t, 1><<<static_cast<unsigned>(want), kThreads, 0, stream>>>(
          in, a.row_stride, cs, a.scale, a.out, chunks_per_row, static_cast<uint32_t>(total));
      return cudaGetLastError();
    }
    const uint64_t per_block = static_cast<uint64_t>(kThreads) * kChunksPerThread;
    const uint64_t want = (total + per_block - 1) / per_block;
    const unsigned grid = static_cast<unsigned>(want < cap ? want : cap);
    // 32-bit indices while base + stride * kChunksPerThread cannot overflow.
    if (total + static_cast<uint64_t>(grid) * kThreads * kChunksPerThread < (1ull << 32)) {
      quantize_vec_kernel<uint32_t, kChunksPerThread><<<grid, kThreads, 0, stream>>>(
          in, a.row_stride, cs, a.scale, a.out, chunks_per_row, static_cast<uint32_t>(total));
    } else {
      quantize_vec_kernel<uint64_t, kChunksPerThread><<<grid, kThreads, 0, stream>>>(
          in, a.row_stride, cs, a.scale, a.out, chunks_per_row, total);
    }
  } else {
    const uint64_t total = static_cast<uint64_t>(a.m) * a.k;
    const uint64_t want = (total + kThreads - 1) / kThreads;
    const uint64_t cap = static_cast<uint64_t>(device_sms) * 16;
    const unsigned grid = static_cast<unsigned>(want < cap ? want : cap);
    quantize_scalar_kernel<<<grid, kThreads, 0, stream>>>(
        static_cast<const uint16_t*>(a.input), a.row_stride,
        static_cast<const uint16_t*>(a.channel_scale), a.scale, a.out, a.k, total);
  }
  return cudaGetLastError();
}

}  // namespace input_quant
}  // namespace
}  // namespace static_fp8_mlp
