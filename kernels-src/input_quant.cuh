// Input quantisation: out[m, k] = q(input[m, k] * channel_scale[k] / scale).
//
// Byte-exact with the fp32 reference q(rn(rn(x * cs) / scale)), without a division per
// element (see Bracket). The vector kernels move 16 bytes of bf16 in and 8 bytes of FP8
// out per chunk: one chunk per thread on a row grid for small inputs, several chunks per
// thread in flight for large ones. The scalar kernel handles any K, stride and alignment.
#pragma once

#include "backend_registry.h"
#include "common.cuh"
#include "fp8_convert.cuh"

// Internal linkage: every arch-group TU includes this file and must get its own copy
// (its own fatbin), never one merged by the linker with another group's.
namespace static_fp8_mlp {
namespace {
namespace input_quant {

// Programmatic dependent launch on both sides (sm_90+). This kernel is launched with the
// programmatic-serialization attribute, so its CTAs are scheduled while the previous
// kernel (the layer that wrote the input) finishes; griddepcontrol.wait then holds every
// read until that kernel is complete and its writes are visible. launch_dependents lets
// the kernel after it (our gate/up GEMM at small M) start setting up likewise; that one
// waits for this kernel's completion before reading the quantised input.
SFM_DEVICE void chain_programmatic_launches() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  pdl_trigger();
  pdl_wait();
#endif
}

#ifndef SFM_QUANT_CHUNKS_PER_THREAD  // independent loads in flight per thread (large M)
#define SFM_QUANT_CHUNKS_PER_THREAD 4
#endif
// Grid of the large-M kernel, in CTAs per multiprocessor (8 resident at 256 threads):
// 16 gave 92-93% of the copy rate at M = 8192, K = 2048 / 4096, against 89-90% with 8 and
// 88% with 4 (H200, 2026-11-22); 8 chunks per thread instead of 4 gave 82-86%.
#ifndef SFM_QUANT_CTAS_PER_SM
#define SFM_QUANT_CTAS_PER_SM 16
#endif

constexpr int kElemsPerChunk = 8;     // 8 bf16 = 16 bytes
constexpr int kChunksPerThread = SFM_QUANT_CHUNKS_PER_THREAD;
constexpr int kThreads = 256;

SFM_DEVICE float bf16_lo(uint32_t w) { return __uint_as_float(w << 16); }
SFM_DEVICE float bf16_hi(uint32_t w) { return __uint_as_float(w & 0xffff0000u); }

// The reference quantises t = rn(v / scale), v = x * cs (exact: bf16 x bf16), with one
// IEEE division per element, which made this kernel instruction bound. Instead each
// element is bracketed: lo = rn(v * y_lo) and hi = rn(v * y_hi), with y_lo and y_hi
// 1 / scale scaled by (1 -+ 2^-20), lie on either side of t (t is within 2^-24 of v /
// scale, the bracket more than 2^-21 away). FP8 rounding is monotone, so when lo and hi
// give the same FP8 byte, t gives that byte too; that covers NaN (GPU arithmetic
// yields the positive canonical NaN, as the reference's does), infinities and zeros.
// Otherwise (an FP8 rounding boundary inside the bracket: about one chunk in 10^4 on
// generic data, but 3% of the benchmark's K = 1536, M = 128 chunks, where many v / scale
// fall exactly on rounding midpoints) the chunk takes the IEEE division. So does every
// element when the scale is not a normal float with a normal reciprocal, where y could be
// far from 1 / scale.
struct Bracket {
  float lo, hi;  // 1 / scale * (1 -+ 2^-20)
  bool usable;   // |scale| in [2^-126, 2^126]
};

SFM_DEVICE Bracket make_bracket(float scale) {
  float y = fast_rcp(scale);  // within 1 ulp of 1 / scale
  y = __fmaf_rn(y, __fmaf_rn(-scale, y, 1.0f), y);  // one Newton step
  const float mag = fabsf(scale);
  return {y * (1.0f - 0x1p-20f), y * (1.0f + 0x1p-20f), mag >= 0x1p-126f && mag <= 0x1p126f};
}

SFM_DEVICE uint8_t quantize_one(float x, float cs, float scale, const Bracket& b) {
  const float v = __fmul_rn(x, cs);
  const uint8_t lo = static_cast<uint8_t>(cvt_pair(__fmul_rn(v, b.lo), 0.0f));
  const uint8_t hi = static_cast<uint8_t>(cvt_pair(__fmul_rn(v, b.hi), 0.0f));
  return b.usable && lo == hi ? lo : q_one(__fdiv_rn(v, scale));
}

// v[e] = x[e] * cs[e] for a chunk of eight bf16 inputs and channel scales (exact in fp32).
SFM_DEVICE void channel_products(int4 in, int4 cs, float (&v)[kElemsPerChunk]) {
  const uint32_t a[4] = {static_cast<uint32_t>(in.x), static_cast<uint32_t>(in.y),
                         static_cast<uint32_t>(in.z), static_cast<uint32_t>(in.w)};
  const uint32_t c[4] = {static_cast<uint32_t>(cs.x), static_cast<uint32_t>(cs.y),
                         static_cast<uint32_t>(cs.z), static_cast<uint32_t>(cs.w)};
#pragma unroll
  for (int e = 0; e < kElemsPerChunk; ++e) {
    const uint32_t aw = a[e / 2], cw = c[e / 2];
    v[e] = __fmul_rn(e % 2 ? bf16_hi(aw) : bf16_lo(aw), e % 2 ? bf16_hi(cw) : bf16_lo(cw));
  }
}

// The bracket's FP8 bytes of four products (element 0 in the low byte); `agree` says whether
// the two bracket products gave the same bytes, i.e. whether these are rn(v / scale)'s.
SFM_DEVICE uint32_t bracket_quad(const float* v, const Bracket& b, bool& agree) {
  const uint32_t lo = cvt_quad(__fmul_rn(v[0], b.lo), __fmul_rn(v[1], b.lo),
                               __fmul_rn(v[2], b.lo), __fmul_rn(v[3], b.lo));
  const uint32_t hi = cvt_quad(__fmul_rn(v[0], b.hi), __fmul_rn(v[1], b.hi),
                               __fmul_rn(v[2], b.hi), __fmul_rn(v[3], b.hi));
  agree = b.usable && lo == hi;
  return lo;
}

// Eight bf16 inputs and channel scales -> eight FP8 bytes. The fallback (v -> bytes: the
// IEEE divisions here) sits behind one rarely taken branch per chunk (per element, the
// compiler would predicate it into the common path).
template <typename Fallback>
SFM_DEVICE Vec8 quantize_chunk_with(int4 in, int4 cs, const Bracket& b, Fallback fallback) {
  float v[kElemsPerChunk];
  channel_products(in, cs, v);
  Vec8 q;
  bool agree[2];
#pragma unroll
  for (int w = 0; w < 2; ++w) q.w[w] = bracket_quad(v + 4 * w, b, agree[w]);
  if (__builtin_expect(!agree[0] || !agree[1], 0)) q = fallback(v);
  return q;
}

SFM_DEVICE Vec8 quantize_chunk(int4 in, int4 cs, float scale, const Bracket& b) {
  return quantize_chunk_with(in, cs, b, [scale](const float (&v)[kElemsPerChunk]) {
    Vec8 q;
#pragma unroll
    for (int w = 0; w < 2; ++w) {
      q.w[w] = q_quad(__fdiv_rn(v[4 * w], scale), __fdiv_rn(v[4 * w + 1], scale),
                      __fdiv_rn(v[4 * w + 2], scale), __fdiv_rn(v[4 * w + 3], scale));
    }
    return q;
  });
}

// The small-M kernel's fallback. There the call takes as long as its slowest thread,
// and a chunk that took the IEEE divisions above made the whole call 0.25-0.35 us
// slower (benchmarks/RESULTS.md, fifteenth session). So its fallback computes
// rn(v / scale) with straight-line code: with y = rn(1 / scale), q0 = rn(v * y) is
// within 2 ulp of v / scale; one correction q1 = rn(q0 + rn(v - q0 * scale) * y) makes
// it faithful; then r1 = v - q1 * scale is exact (fma) and rn(q1 + r1 * y) is
// rn(v / scale) (Markstein's theorem), provided v and the intermediates stay normal.
// That holds wherever the FP8 byte depends on it (|t| in [2^-11, 2^9]) when |scale| is
// in [2^-80, 2^80] (scripts/check_exact_quotient.py checks it in exact arithmetic);
// outside that, a tiny t rounds to a signed zero and a large one saturates either way.
// Other scales take the IEEE division, on a branch uniform across the call. The selects
// are selp: written as ?:, ptxas turned them into a branch per element.
// Measured (sixteenth session, H200, K = 1152-4096, M = 1-512): bracket + this fallback
// was at or within 0.01 us of the bracket + IEEE divisions at every point (K = 2048,
// M = 1: 1.46 -> 1.32 us); this quotient in every element instead of the bracket was
// slower at M = 512 (K = 2048: 1.90 -> 2.35 us).
struct Reciprocal {
  float y;      // rn(1 / scale)
  bool usable;  // |scale| in [2^-80, 2^80]
};

SFM_DEVICE Reciprocal make_reciprocal(float scale) {
  const float mag = fabsf(scale);
  return {__frcp_rn(scale), mag >= 0x1p-80f && mag <= 0x1p80f};
}

SFM_DEVICE float select(bool p, float a, float b) {
  float r;
  asm("{\n .reg .pred p;\n setp.ne.u32 p, %3, 0;\n selp.f32 %0, %1, %2, p;\n}"
      : "=f"(r) : "f"(a), "f"(b), "r"(static_cast<uint32_t>(p)));
  return r;
}

SFM_DEVICE float quotient_rn(float v, float scale, float y) {
  const float q0 = __fmul_rn(v, y);
  const float q1 = __fmaf_rn(__fmaf_rn(-q0, scale, v), y, q0);
  const float t = __fmaf_rn(__fmaf_rn(-q1, scale, v), y, q1);
  // v = +-0, +-inf or NaN, or a quotient that overflowed: q0 is already rn(v / scale)
  // up to FP8 saturation (and keeps the sign of a zero, which the corrections would not).
  return select(v != 0.0f && fabsf(t) < __int_as_float(0x7f800000), t, q0);
}

// rn(v / scale) of four products, as FP8 bytes, without a branch per element.
SFM_DEVICE uint32_t exact_quad(const float* v, float scale, const Reciprocal& r) {
  float t[4];
  if (r.usable) {
#pragma unroll
    for (int e = 0; e < 4; ++e) t[e] = quotient_rn(v[e], scale, r.y);
  } else {
#pragma unroll
    for (int e = 0; e < 4; ++e) t[e] = __fdiv_rn(v[e], scale);
  }
  return q_quad(t[0], t[1], t[2], t[3]);
}

// The small-M kernel's chunk: the bracket, with the exact quotient as the fallback of each
// half (four elements) on its own. A failing element usually has no failing neighbour, and
// at these sizes the fallback's instructions set the call's time: one per chunk made the
// benchmark's K = 1536, M = 128 input (805 failing chunks in 24576) 0.55 us slower than
// clean data; one per half, 0.35 us. Finer (per pair or per element) was slower on clean
// data by 0.05-0.3 us (benchmarks/RESULTS.md, twenty-second session).
SFM_DEVICE Vec8 quantize_chunk_small_m(int4 in, int4 cs, float scale) {
  const Bracket b = make_bracket(scale);
  float v[kElemsPerChunk];
  channel_products(in, cs, v);
  Vec8 q;
#pragma unroll
  for (int w = 0; w < 2; ++w) {
    bool agree;
    q.w[w] = bracket_quad(v + 4 * w, b, agree);
    if (__builtin_expect(!agree, 0)) q.w[w] = exact_quad(v + 4 * w, scale, make_reciprocal(scale));
  }
  return q;
}

// Requires K % 8 == 0, row_stride % 8 == 0 and 16-byte aligned input/channel_scale,
// 8-byte aligned output.
// Index is uint32_t whenever the chunk count fits (the common case): 64-bit division
// per chunk would cost more than the memory traffic it serves.
// kChunksPerThread chunks per thread keep loads in flight.
template <typename Index>
__global__ void __launch_bounds__(kThreads)
    quantize_vec_kernel(const uint16_t* __restrict__ input, int64_t row_stride,
                        const uint16_t* __restrict__ channel_scale,
                        const float* __restrict__ scale_ptr, uint8_t* __restrict__ out,
                        uint32_t chunks_per_row, Index total_chunks) {
  chain_programmatic_launches();  // before any read
  const Index stride = static_cast<Index>(gridDim.x) * kThreads;
  Index base = static_cast<Index>(blockIdx.x) * kThreads * kChunksPerThread + threadIdx.x;
  for (; base < total_chunks; base += stride * kChunksPerThread) {
    int4 in[kChunksPerThread];
    int4 cs[kChunksPerThread];
    uint64_t row[kChunksPerThread];
    uint32_t col[kChunksPerThread];
    const float scale = __ldg(scale_ptr);
    // Chunks past the end re-read the last one (only stores are guarded): one basic
    // block of loads, so the reciprocal of the scale is not scheduled between them,
    // where it would hold their issue until the scale arrives.
#pragma unroll
    for (int i = 0; i < kChunksPerThread; ++i) {
      const Index want = base + static_cast<Index>(i) * kThreads;
      const Index c = want < total_chunks ? want : total_chunks - 1;
      const Index r = c / chunks_per_row;
      row[i] = r;
      col[i] = static_cast<uint32_t>(c - r * chunks_per_row);
      // Streamed once: evict-first load; channel_scale is tiny and reused: read-only path.
      in[i] = __ldcs(reinterpret_cast<const int4*>(input + row[i] * row_stride) + col[i]);
      cs[i] = __ldg(reinterpret_cast<const int4*>(channel_scale) + col[i]);
    }
    const Bracket bracket = make_bracket(scale);
#pragma unroll
    for (int i = 0; i < kChunksPerThread; ++i) {
      const Index c = base + static_cast<Index>(i) * kThreads;
      if (c < total_chunks) {
        const Vec8 q = quantize_chunk(in[i], cs[i], scale, bracket);
        *reinterpret_cast<Vec8*>(out + (row[i] * chunks_per_row + col[i]) * kElemsPerChunk) = q;
      }
    }
  }
}

// Small inputs (under one wave of 4-chunk threads): one chunk per thread on a 2-D grid,
// blockIdx.y = row, so a thread's loads wait on no index division (at this size the
// call is one dependent chain per thread: its length is the time).
constexpr int kRowThreads = 128;

__global__ void __launch_bounds__(kRowThreads)
    quantize_rows_kernel(const uint16_t* __restrict__ input, int64_t row_stride,
                         const uint16_t* __restrict__ channel_scale,
                         const float* __restrict__ scale_ptr, uint8_t* __restrict__ out,
                         uint32_t chunks_per_row) {
  chain_programmatic_launches();  // before any read
  const uint32_t col = blockIdx.x * kRowThreads + threadIdx.x;
  if (col >= chunks_per_row) return;
  const uint32_t row = blockIdx.y;
  const float scale = __ldg(scale_ptr);
  const int4 in = __ldcs(reinterpret_cast<const int4*>(input + row * row_stride) + col);
  const int4 cs = __ldg(reinterpret_cast<const int4*>(channel_scale) + col);
  const Vec8 q = quantize_chunk_small_m(in, cs, scale);
  *reinterpret_cast<Vec8*>(out + (static_cast<uint64_t>(row) * chunks_per_row + col) *
                                     kElemsPerChunk) = q;
}

__global__ void __launch_bounds__(kThreads)
    quantize_scalar_kernel(const uint16_t* __restrict__ input, int64_t row_stride,
                           const uint16_t* __restrict__ channel_scale,
                           const float* __restrict__ scale_ptr, uint8_t* __restrict__ out,
                           int64_t k, uint64_t total) {
  chain_programmatic_launches();  // before any read
  const float scale = __ldg(scale_ptr);
  const Bracket bracket = make_bracket(scale);
  for (uint64_t i = static_cast<uint64_t>(blockIdx.x) * kThreads + threadIdx.x; i < total;
       i += static_cast<uint64_t>(gridDim.x) * kThreads) {
    const uint64_t row = i / k;
    const uint64_t col = i - row * k;
    const float x = __uint_as_float(static_cast<uint32_t>(input[row * row_stride + col]) << 16);
    const float cs = __uint_as_float(static_cast<uint32_t>(channel_scale[col]) << 16);
    out[i] = quantize_one(x, cs, scale, bracket);
  }
}

inline bool aligned(const void* p, uintptr_t bytes) {
  return (reinterpret_cast<uintptr_t>(p) % bytes) == 0;
}

inline cudaError_t launch(const InputQuantArgs& a, cudaStream_t stream) {
  if (a.m == 0 || a.k == 0) return cudaSuccess;
  int dev = 0;
  cudaError_t e = cudaGetDevice(&dev);
  if (e != cudaSuccess) return e;
  const int device_sms = sm_count(dev);
  // Every kernel here waits before reading (chain_programmatic_launches): sm_90+ only.
  const bool pdl = device_arch(dev).major >= 9;
  const bool vec = a.k % kElemsPerChunk == 0 && a.row_stride % kElemsPerChunk == 0 &&
                   aligned(a.input, 16) && aligned(a.channel_scale, 16) && aligned(a.out, 8);
  if (vec) {
    const uint64_t total = static_cast<uint64_t>(a.m) * (a.k / kElemsPerChunk);
    const uint64_t cap = static_cast<uint64_t>(device_sms) * SFM_QUANT_CTAS_PER_SM;
    const auto* in = static_cast<const uint16_t*>(a.input);
    const auto* cs = static_cast<const uint16_t*>(a.channel_scale);
    const auto chunks_per_row = static_cast<uint32_t>(a.k / kElemsPerChunk);
    const uint64_t one_wave = static_cast<uint64_t>(device_sms) * kThreads * kChunksPerThread;
    if (total <= one_wave && a.m <= 65535) {  // small: a thread per chunk, a grid row per row
      const dim3 grid((chunks_per_row + kRowThreads - 1) / kRowThreads, static_cast<unsigned>(a.m));
      return launch_maybe_programmatic(quantize_rows_kernel, grid, dim3(kRowThreads), pdl, stream,
                                       in, a.row_stride, cs, a.scale, a.out, chunks_per_row);
    }
    const uint64_t per_block = static_cast<uint64_t>(kThreads) * kChunksPerThread;
    const uint64_t want = (total + per_block - 1) / per_block;
    const unsigned grid = static_cast<unsigned>(want < cap ? want : cap);
    // 32-bit indices while base + stride * kChunksPerThread cannot overflow.
    if (total + static_cast<uint64_t>(grid) * kThreads * kChunksPerThread < (1ull << 32)) {
      return launch_maybe_programmatic(quantize_vec_kernel<uint32_t>, dim3(grid), dim3(kThreads),
                                       pdl, stream, in, a.row_stride, cs, a.scale, a.out,
                                       chunks_per_row, static_cast<uint32_t>(total));
    }
    return launch_maybe_programmatic(quantize_vec_kernel<uint64_t>, dim3(grid), dim3(kThreads),
                                     pdl, stream, in, a.row_stride, cs, a.scale, a.out,
                                     chunks_per_row, total);
  } else {
    const uint64_t total = static_cast<uint64_t>(a.m) * a.k;
    const uint64_t want = (total + kThreads - 1) / kThreads;
    const uint64_t cap = static_cast<uint64_t>(device_sms) * 16;
    const unsigned grid = static_cast<unsigned>(want < cap ? want : cap);
    return launch_maybe_programmatic(quantize_scalar_kernel, dim3(grid), dim3(kThreads), pdl,
                                     stream, static_cast<const uint16_t*>(a.input), a.row_stride,
                                     static_cast<const uint16_t*>(a.channel_scale), a.scale, a.out,
                                     a.k, total);
  }
}

}  // namespace input_quant
}  // namespace
}  // namespace static_fp8_mlp
