// Register-streaming FP8 GEMM for the smallest batches (sm_89+: mma.sync e4m3).
//
// With a handful of tokens a GEMM is one pass over the weights. For the small MLPs
// (a vision tower's few MB of weights, L2-resident) even that pass is short, and what
// a launch costs is its chain of latencies: ring set-up, tensor-map fetch, barrier
// round trips, a serial epilogue. This kernel keeps that chain to one memory round
// trip per operand:
// - A warp owns 8 weight rows (the mma's N) over a slice of K, for every token of its
//   CTA (the mma's M, tiles of 16). A lane loads 16 contiguous bytes of its weight row
//   per 64-byte K step straight into registers (no ring, no ldmatrix), and 16 bytes of
//   each of its two token rows from the CTA's copy of x in shared memory. The mma does
//   not care in which order K is summed, so within each step K is permuted identically
//   for both operands until those 16 bytes are exactly the lane's A and B fragments of
//   two m16n8k32 mmas.
// - The K slices of a row group (warps of one CTA) meet once, in shared memory, in a
//   fixed order (deterministic), and the fused epilogue of mlp_epilogues.cuh stores.
// - Programmatic dependent launch (sm_90+): a CTA loads its first weight chunk before
//   griddepcontrol.wait. The down GEMM, launched while the gate/up GEMM runs, thus has
//   its weights in flight before the hidden state exists.
#pragma once

#include <cuda_bf16.h>

#include <algorithm>
#include <cstdint>

#include "backend_registry.h"
#include "common.cuh"
#include "fp8_convert.cuh"
#include "fp8_gemm_mma.cuh"  // mma_fp8
#include "mlp_epilogues.cuh"

#ifndef SFM_WARP_FILL_WARPS  // warps per multiprocessor the K split aims for
#define SFM_WARP_FILL_WARPS 8
#endif

// Internal linkage: every arch-group TU includes this file and must get its own copy.
namespace static_fp8_mlp {
namespace {
namespace warp_gemm {

constexpr int kLog2Warps = 4;
constexpr int kWarps = 1 << kLog2Warps;
constexpr int kThreads = 32 * kWarps;
constexpr int kRows = 8;         // output columns per warp: the mma's N
constexpr int kStepBytes = 64;   // K bytes per warp step: 4 lanes x 16 B
constexpr int kMaxTokensPerCta = 32;  // two 16-token mma tiles; more tokens: grid.y
constexpr int kFillWarps = SFM_WARP_FILL_WARPS;
constexpr int kSmemBytes = 227 * 1024;   // per CTA on sm_90 (less elsewhere: supports())

struct WarpGemmParams {
  const uint8_t* x;
  const uint8_t* w;
  int m;
  int k;
  int n_out;    // output columns: H for the gated GEMM1 (gate rows, then up rows), else rows
  int k_steps;  // ceil(k / kStepBytes)
  int log2_splits;  // log2 of the warps per row group (K slices; they divide kWarps)
  void* out;
  EpilogueParams epi;
};

// 16 bytes of a weight row, or zeros past K. Read once per call: no L1 allocation. Not
// ld.global.nc: ptxas hoists griddepcontrol.wait above non-coherent loads, which would
// stop the weight prefetch before the wait.
SFM_DEVICE uint4 load_weights(const uint8_t* p, bool ok) {
  uint4 v;
  asm volatile("{\n .reg .pred p;\n setp.ne.b32 p, %5, 0;\n"
               " mov.b32 %0, 0;\n mov.b32 %1, 0;\n mov.b32 %2, 0;\n mov.b32 %3, 0;\n"
               " @p ld.global.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];\n}\n"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p), "r"(static_cast<int>(ok)));
  return v;
}

// The K-slice partial sums in static shared memory: [kWarps][sums][16-token tiles][4][32].
constexpr int partial_bytes(EpilogueKind epi, int tokens_per_cta) {
  return kWarps * (epi == EpilogueKind::kGatedToFp8 ? 2 : 1) * (tokens_per_cta <= 16 ? 1 : 2) *
         4 * 32 * 4;
}

template <EpilogueKind EPI>
constexpr int chunk_steps() {  // 64 weight registers per thread either way
  return EPI == EpilogueKind::kGatedToFp8 ? 8 : 16;
}

// Bytes of one token row of x in shared memory: K padded to whole steps, plus 16 so that
// the 8 rows one LDS.128 reads start in different bank groups.
__host__ __device__ inline int x_row_bytes(int k_steps) { return k_steps * kStepBytes + 16; }

// TOK: tokens per CTA (8, 16 or 32); CTA (x, y) takes tokens [TOK y, TOK y + TOK). Its
// x[tokens, :K] sits in shared memory, read by every warp of the CTA; the weights stream
// through registers only (L2 serves the token tiles after the first).
template <EpilogueKind EPI, Activation ACT, int TOK>
__global__ void __launch_bounds__(kThreads, 1)
    warp_gemm_kernel(const WarpGemmParams p) {
  constexpr bool kGated = EPI == EpilogueKind::kGatedToFp8;
  constexpr int kSums = kGated ? 2 : 1;  // gate and up accumulators, or the single one
  constexpr int TT = TOK <= 16 ? 1 : 2;  // 16-token mma tiles
  constexpr int kChunk = chunk_steps<EPI>();
  __shared__ float partial[kWarps][kSums][TT][4][32];
  static_assert(sizeof(partial) == partial_bytes(EPI, TOK), "partial_bytes");
  extern __shared__ __align__(16) uint8_t x_smem[];  // [TOK][x_row_bytes]

  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;
  const int g = lane >> 2;   // mma group: weight row g of the warp's 8, tokens g and g + 8
  const int tq = lane & 3;   // which 16 bytes of a 64-byte K step
  // Shifts, not divisions: the weight loads wait for these addresses.
  const int splits = 1 << p.log2_splits;
  const int slice = warp & (splits - 1);
  const int c0 = ((blockIdx.x << (kLog2Warps - p.log2_splits)) + (warp >> p.log2_splits)) * kRows;
  const int st_begin = (slice * p.k_steps) >> p.log2_splits;
  const int st_end = ((slice + 1) * p.k_steps) >> p.log2_splits;
  const int row_bytes = x_row_bytes(p.k_steps);
  const int t0 = blockIdx.y * TOK;       // first token of the CTA
  const int m_here = min(p.m - t0, TOK);  // its tokens

  // This lane's weight rows (clamped: the stores of columns past n_out are masked).
  const int col = min(c0 + g, p.n_out - 1);
  const uint8_t* wrow[kSums];
#pragma unroll
  for (int s = 0; s < kSums; ++s) wrow[s] = p.w + (static_cast<int64_t>(s) * p.n_out + col) * p.k;

  uint4 wv[kChunk][kSums];
  auto load_chunk = [&](int st0) {
#pragma unroll
    for (int c = 0; c < kChunk; ++c) {
      const int kb = (st0 + c) * kStepBytes + tq * 16;
      const bool ok = st0 + c < st_end && kb < p.k;
#pragma unroll
      for (int s = 0; s < kSums; ++s) wv[c][s] = load_weights(wrow[s] + (ok ? kb : 0), ok);
    }
  };
  // Weights never depend on the previous kernel: fetch them before waiting for it.
  load_chunk(st_begin);
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  pdl_wait();
  pdl_trigger();
#endif

  // x into shared memory (cp.async: every copy in flight at once): the valid token rows,
  // and zeros from K to the end of the last step (the weights are zero there too, but
  // 0 * NaN is not). Rows past M stay unwritten: they only reach accumulator rows that
  // are never stored.
  {
    const int chunks_per_row = p.k_steps * (kStepBytes / 16);
    for (int i = threadIdx.x; i < m_here * chunks_per_row; i += kThreads) {
      const int t = i / chunks_per_row;
      const int kb = (i - t * chunks_per_row) * 16;
      mma_gemm::cp_async_16(mma_gemm::smem_addr(x_smem + t * row_bytes + kb),
                            p.x + static_cast<int64_t>(t0 + t) * p.k + (kb < p.k ? kb : 0),
                            kb < p.k);
    }
    mma_gemm::cp_async_commit();
  }

  // The epilogue's per-column operands, loaded raw now so their round trips overlap
  // the mainloop. This lane's output columns: c0 + 2 tq, + 1.
  const int pair_col = min(c0 + 2 * tq, p.n_out - 2);
  float col_w[2][kSums];
  __nv_bfloat16 col_bias[2];
#pragma unroll
  for (int c = 0; c < 2; ++c) {
#pragma unroll
    for (int s = 0; s < kSums; ++s) {
      col_w[c][s] = weight_scale(p.epi, static_cast<int64_t>(s) * p.n_out + pair_col + c);
    }
    col_bias[c] = !kGated && p.epi.bias != nullptr ? p.epi.bias[pair_col + c]
                                                    : __float2bfloat16(0.0f);
  }
  const float x_scale = __ldg(p.epi.x_scale);
  const float inv_hidden = EPI == EpilogueKind::kBiasToBf16 ? 1.0f : inverse_hidden_scale(p.epi);
  mma_gemm::cp_async_wait<0>();
  __syncthreads();  // x is in shared memory

  float acc[kSums][TT][4];  // [gate/up or single][token tile][fragment]
  mma_gemm::zero_fragments(acc);

#pragma unroll 1
  for (int st0 = st_begin; st0 < st_end; st0 += kChunk) {
    if (st0 != st_begin) load_chunk(st0);
#pragma unroll
    for (int c = 0; c < kChunk; ++c) {
      if (st0 + c >= st_end) break;
      const uint8_t* xs = x_smem + g * row_bytes + (st0 + c) * kStepBytes + tq * 16;
#pragma unroll
      for (int t = 0; t < TT; ++t) {
        // Token rows g and g + 8 of tile t: the mma's A fragments (rows 8..15 are zero
        // when the CTA has 8 tokens).
        const uint4 lo = *reinterpret_cast<const uint4*>(xs + (16 * t) * row_bytes);
        const uint4 hi = TOK == 8 ? make_uint4(0, 0, 0, 0)
                                  : *reinterpret_cast<const uint4*>(xs + (16 * t + 8) * row_bytes);
        // K permutation: mma k = 4 tq + j <-> byte j, k = 16 + 4 tq + j <-> byte 4 + j of
        // the lane's 16 (first mma: bytes 0-7, second: 8-15), for both operands.
        const uint32_t a0[4] = {lo.x, hi.x, lo.y, hi.y};
        const uint32_t a1[4] = {lo.z, hi.z, lo.w, hi.w};
#pragma unroll
        for (int s = 0; s < kSums; ++s) {
          mma_gemm::mma_fp8(acc[s][t], a0, wv[c][s].x, wv[c][s].y);
          mma_gemm::mma_fp8(acc[s][t], a1, wv[c][s].z, wv[c][s].w);
        }
      }
    }
  }

  // K slices meet: slices 1.. park their sums, slice 0 adds them in slice order.
  if (slice != 0) {
#pragma unroll
    for (int s = 0; s < kSums; ++s)
#pragma unroll
      for (int t = 0; t < TT; ++t)
#pragma unroll
        for (int r = 0; r < 4; ++r) partial[warp][s][t][r][lane] = acc[s][t][r];
  }
  __syncthreads();
  if (slice != 0 || c0 >= p.n_out) return;
  for (int o = 1; o < splits; ++o) {
#pragma unroll
    for (int s = 0; s < kSums; ++s)
#pragma unroll
      for (int t = 0; t < TT; ++t)
#pragma unroll
        for (int r = 0; r < 4; ++r) acc[s][t][r] += partial[warp + o][s][t][r][lane];
  }

  // ---- fused epilogue: accumulator r of tile t is token 16 t + g + 8 (r / 2), column
  // c0 + 2 tq + (r % 2); one 2-byte (FP8) or 4-byte (bf16) store per pair ----
#pragma unroll
  for (int t = 0; t < TT; ++t) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int tok = t * 16 + h * 8 + g;
      if (tok >= m_here) continue;
      float v[2];
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        const int r = 2 * h + c;
        if constexpr (kGated) {
          const float gate = acc[0][t][r] * (x_scale * col_w[c][0]);
          const float up = acc[1][t][r] * (x_scale * col_w[c][1]);
          v[c] = activate<ACT>(gate) * up * inv_hidden;
        } else {
          const float y = acc[0][t][r] * (x_scale * col_w[c][0]) + __bfloat162float(col_bias[c]);
          v[c] = EPI == EpilogueKind::kBiasGeluToFp8 ? gelu_tanh(y) * inv_hidden : y;
        }
      }
      const int64_t at = static_cast<int64_t>(t0 + tok) * p.n_out + c0 + 2 * tq;
      if constexpr (EPI == EpilogueKind::kBiasToBf16) {
        *reinterpret_cast<__nv_bfloat162*>(static_cast<__nv_bfloat16*>(p.out) + at) =
            __floats2bfloat162_rn(v[0], v[1]);
      } else {
        *reinterpret_cast<uint16_t*>(static_cast<uint8_t*>(p.out) + at) = q_pair(v[0], v[1]);
      }
    }
  }
}

// K slices per row group: the fewest that keep a slice within one chunk of steps (each
// further chunk is one more memory round trip on the critical path), more while the
// row groups alone give the GPU fewer than kFillWarps warps per multiprocessor (more
// slices: more CTAs, each re-reading x).
inline int pick_splits(int64_t groups, int64_t k_steps, int64_t chunk, int sms) {
  int splits = 1;
  while (splits < kWarps && k_steps / (2 * splits) >= 1 &&
         (groups * splits < int64_t(sms) * kFillWarps ||
          host_ceil_div(k_steps, splits) > chunk)) {
    splits *= 2;
  }
  return splits;
}

template <EpilogueKind EPI, Activation ACT, int TOK>
cudaError_t launch_tiles(const WarpGemmParams& p, int64_t ctas, bool pdl, cudaStream_t stream) {
  const int64_t token_tiles = host_ceil_div(p.m, TOK);
  if (token_tiles > 65535) return cudaErrorInvalidConfiguration;
  constexpr auto kernel = warp_gemm_kernel<EPI, ACT, TOK>;
  const int x_bytes = TOK * x_row_bytes(p.k_steps);
  cudaError_t e = allow_dynamic_smem<kernel>(kSmemBytes - partial_bytes(EPI, TOK));
  if (e != cudaSuccess) return e;
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(static_cast<unsigned>(ctas), static_cast<unsigned>(token_tiles), 1);
  config.blockDim = dim3(kThreads, 1, 1);
  config.dynamicSmemBytes = static_cast<size_t>(x_bytes);
  config.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  config.attrs = attr;
  config.numAttrs = pdl ? 1 : 0;  // programmatic dependent launch needs sm_90+
  return cudaLaunchKernelEx(&config, kernel, p);
}

// Tokens per CTA for m tokens.
inline int tokens_per_cta(int64_t m) { return m <= 8 ? 8 : m <= 16 ? 16 : kMaxTokensPerCta; }

// Whether the kernel takes an [m, k] problem: x of a CTA (its tokens, all of K) and the
// partial sums must fit in the shared memory of a CTA on this device.
template <EpilogueKind EPI>
bool supports(int64_t m, int64_t k, int dev) {
  if (k > 0x7fffffff) return false;
  const int tok = tokens_per_cta(m);
  const int64_t bytes = int64_t(tok) * x_row_bytes(static_cast<int>(host_ceil_div(k, kStepBytes))) +
                        partial_bytes(EPI, tok);
  return bytes <= std::min(smem_per_block_optin(dev), kSmemBytes);
}

// out[m, n_out] = epilogue(x[m, k] w^T), for problems `supports` accepts. The gated GEMM
// reads 2 n_out weight rows (gate rows, then up rows).
// Called through MlpGemms, which returns empty problems and looks up the device `dev`.
struct Launch {
  template <EpilogueKind EPI, Activation ACT>
  static cudaError_t run(const uint8_t* x, const uint8_t* w, int64_t m, int64_t k, int64_t n_out,
                         void* out, const EpilogueParams& epi, int dev,
                         cudaStream_t stream) {
    if (!supports<EPI>(m, k, dev) || n_out % kRows != 0) return cudaErrorInvalidValue;
    auto p = register_stream_params<WarpGemmParams>(x, w, m, k, n_out, kStepBytes, out, epi);
    const int64_t groups = n_out / kRows;
    const int splits = pick_splits(groups, p.k_steps, chunk_steps<EPI>(), sm_count(dev));
    p.log2_splits = host_log2_pow2(splits);
    const int64_t ctas = host_ceil_div(groups, kWarps / splits);
    if (ctas > 0x7fffffff) return cudaErrorInvalidConfiguration;
    const bool pdl = device_arch(dev).major >= 9;
    switch (tokens_per_cta(m)) {
      case 8: return launch_tiles<EPI, ACT, 8>(p, ctas, pdl, stream);
      case 16: return launch_tiles<EPI, ACT, 16>(p, ctas, pdl, stream);
      default: return launch_tiles<EPI, ACT, 32>(p, ctas, pdl, stream);
    }
  }
};

// The three GEMMs of the MLPs, as the backends call them.
using Gemms = MlpGemms<Launch>;

}  // namespace warp_gemm
}  // namespace
}  // namespace static_fp8_mlp
