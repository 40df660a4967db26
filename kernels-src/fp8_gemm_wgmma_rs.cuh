// Register-sourced wgmma FP8 GEMM for mid-sized batches on L2-resident weights (sm_90a).
//
// Between the decode batches of the warp kernel (fp8_gemm_warp.cuh, whose mma.sync e4m3
// sm_90 runs at a fraction of the tensor-core rate) and the batches that fill the TMA
// wgmma tiles, a small MLP's GEMM is still a latency chain: a few MB of weights out of
// L2 and a few hundred MFLOP. This kernel keeps the warp kernel's chain (weights loaded
// straight into registers before griddepcontrol.wait, x copied once into shared memory)
// and feeds the real FP8 tensor cores:
// - A CTA is one warpgroup and owns 64 weight rows (the wgmma's M: weights are the A
//   operand, from registers) over a slice of K, for NTOK tokens (the wgmma's N; x is B,
//   copied by cp.async into shared memory in the 128-byte swizzle layout). A lane loads
//   16 contiguous bytes of each of its two A rows per 64-byte K step (below for why
//   they need a transpose across the lane's quad).
// - K is split over a thread-block cluster of up to 8 CTAs (one slice each), so that
//   a GEMM with few row blocks (the down GEMM: N / 64 of them) still uses every SM and
//   each CTA copies only its own slice of x. The slices' fp32 tiles meet over
//   distributed shared memory: CTA r of the cluster sums its share of the tokens over
//   all ranks in rank order (deterministic) and runs the fused epilogue on it.
// - Precision: wgmma's FP8 accumulation keeps fewer mantissa bits than fp32, so every
//   kPromoteSteps steps its sum is added into fp32 registers (as in fp8_gemm_wgmma.cuh).
// - Before griddepcontrol.wait, everything that does not depend on the previous kernel:
//   the weights, loaded and transposed, and the epilogue's scales and bias. After it,
//   one round trip for x, the wgmmas, the cluster reduction. 32-token CTAs take at most
//   168 registers, so that 3 fit per SM and both GEMMs of an MLP are resident at once.
//   (scripts/phase_trace.py shows these phases per CTA; RESULTS.md, twentieth session.)
//
// The A fragment of m64nNk32 for 8-bit types gives lane (g, t) of warp w rows 16 w + g
// (registers 0, 2) and 16 w + g + 8 (registers 1, 3), k = 4 t .. 4 t + 3 (registers 0,
// 1) and 16 + 4 t .. (registers 2, 3) of each 32-byte k block: 4-byte words t, 4 + t,
// 8 + t and 12 + t of a 64-byte step, while its 16-byte load holds words 4 t .. 4 t + 3.
// quad_transpose moves the words across the 4 lanes of the quad (3 shuffles). A 4-byte
// scatter of x into a permuted layout instead cost one cp.async per word and was slower.
// Measured where this kernel wins and where it does not: benchmarks/RESULTS.md.
#pragma once

#include <cuda_bf16.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "backend_registry.h"
#include "common.cuh"
#include "fp8_convert.cuh"
#include "fp8_gemm_mma.cuh"    // cp_async_16
#include "fp8_gemm_wgmma.cuh"  // wgmma_fence/commit/wait, smem_desc, SFM_WGMMA_ACC*
#include "mlp_epilogues.cuh"
#include "phase_trace.cuh"

#ifndef SFM_RS_PROMOTE_STEPS  // 64-byte K steps accumulated by wgmma before the fp32 add
#define SFM_RS_PROMOTE_STEPS 4
#endif
#ifndef SFM_RS_FILL_CTAS_PER_SM  // the K split grows while all CTAs fit at this many per SM
#define SFM_RS_FILL_CTAS_PER_SM 2
#endif
#ifndef SFM_RS_THREE_PER_SM_TOKENS  // CTAs of up to this many tokens fit 3 per SM (<= 168 registers)
#define SFM_RS_THREE_PER_SM_TOKENS 32
#endif
#ifndef SFM_RS_CHUNK_STEPS  // K steps whose weights a thread holds at once
#define SFM_RS_CHUNK_STEPS 12
#endif

namespace static_fp8_mlp {
namespace {
namespace wgmma_rs {

using wgmma_gemm::wgmma_commit;
using wgmma_gemm::wgmma_fence;
using wgmma_gemm::wgmma_wait;
using tma::cluster_sync;
using tma::cluster_sync_relaxed;
using tma::load_peer;
using tma::smem_u32;

constexpr int kThreads = 128;       // one warpgroup
constexpr int kRows = 64;           // weight rows per CTA: the wgmma's M
constexpr int kStepBytes = 64;      // K bytes per step: 4 lanes x 16 B
constexpr int kPromoteSteps = SFM_RS_PROMOTE_STEPS;
constexpr int kChunkSteps = SFM_RS_CHUNK_STEPS;
constexpr int kMaxCluster = 8;      // portable cluster size
constexpr int kRedPitch = kRows + 4;  // floats per token of a partial tile (conflict-free)
constexpr int kSmemBytes = 227 * 1024;
// A chunk ends a promotion group: its registers are reloaded once the wgmmas are done.
static_assert(kChunkSteps % kPromoteSteps == 0, "chunks of whole promotion groups");

struct RsParams {
  const uint8_t* x;
  const uint8_t* w;
  int m;
  int k;
  int n_out;        // output columns: H for the gated GEMM1 (gate rows, then up rows)
  int k_steps;      // ceil(k / kStepBytes)
  int log2_cluster; // K slices: CTAs per cluster
  void* out;
  EpilogueParams epi;
};

// wgmma m64nNk32 e4m3 x e4m3 -> f32 with A from registers and B (x) from shared memory.
template <int NTOK>
SFM_DEVICE void wgmma_rs(float (&d)[NTOK / 2], const uint32_t (&a)[4], uint64_t desc_b,
                         int scale_d) {
  static_assert(NTOK == 32 || NTOK == 64 || NTOK == 128, "wgmma N");
  if constexpr (NTOK == 32) {
    asm volatile(
        "{\n .reg .pred p;\n setp.ne.b32 p, %21, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n32k32.f32.e4m3.e4m3 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15}, "
        "{%16, %17, %18, %19}, %20, p, 1, 1;\n}\n"
        : SFM_WGMMA_ACC8(0), SFM_WGMMA_ACC8(8)
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(scale_d));
  } else if constexpr (NTOK == 64) {
    asm volatile(
        "{\n .reg .pred p;\n setp.ne.b32 p, %37, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k32.f32.e4m3.e4m3 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, "
        "%18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
        "{%32, %33, %34, %35}, %36, p, 1, 1;\n}\n"
        : SFM_WGMMA_ACC8(0), SFM_WGMMA_ACC8(8), SFM_WGMMA_ACC8(16), SFM_WGMMA_ACC8(24)
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(scale_d));
  } else {
    asm volatile(
        "{\n .reg .pred p;\n setp.ne.b32 p, %69, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, "
        "%18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, "
        "%34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, "
        "%50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
        "{%64, %65, %66, %67}, %68, p, 1, 1;\n}\n"
        : SFM_WGMMA_ACC64
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(scale_d));
  }
}

// Lane t of a quad holds words 4 t .. 4 t + 3 of a 64-byte K step of one weight row;
// returns words t, 4 + t, 8 + t, 12 + t: its wgmma A fragments of the step (top
// comment). A 4 x 4 transpose across the quad: rotate by t, three shuffles, rotate back.
SFM_DEVICE uint4 quad_transpose(uint4 a, int lane) {
  const int t = lane & 3;
  const bool t1 = t & 1;
  const bool t2 = t & 2;
  // r_j = a_{(j + t) % 4}
  const uint32_t s0 = t1 ? a.y : a.x, s1 = t1 ? a.z : a.y, s2 = t1 ? a.w : a.z, s3 = t1 ? a.x : a.w;
  const uint32_t r1 = t2 ? s3 : s1, r2 = t2 ? s0 : s2, r3 = t2 ? s1 : s3;
  const uint32_t r0 = t2 ? s2 : s0;
  // x_d = r_d of lane t - d = word 4 ((t - d) % 4) + t
  const int quad = lane & ~3;
  const uint32_t x1 = __shfl_sync(0xffffffffu, r1, quad | ((t - 1) & 3));
  const uint32_t x2 = __shfl_sync(0xffffffffu, r2, quad | ((t - 2) & 3));
  const uint32_t x3 = __shfl_sync(0xffffffffu, r3, quad | ((t - 3) & 3));
  // b_i = x_{(t - i) % 4} = z_{(i - t) % 4} with z = (x0, x3, x2, x1)
  const uint32_t u0 = t1 ? x1 : r0, u1 = t1 ? r0 : x3, u2 = t1 ? x3 : x2, u3 = t1 ? x2 : x1;
  return make_uint4(t2 ? u2 : u0, t2 ? u3 : u1, t2 ? u0 : u2, t2 ? u1 : u3);
}

// 16 bytes of weights, read once: no L1 allocation; coherent, so that ptxas keeps it
// ahead of griddepcontrol.wait (see fp8_gemm_warp.cuh).
SFM_DEVICE uint4 load_weights_raw(const uint8_t* p) {
  uint4 v;
  asm volatile("ld.global.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

// 4 and 2 bytes of the epilogue's operands, coherent for the same reason, kept as raw
// bits until the epilogue (a conversion right after the load waited for it there).
SFM_DEVICE uint32_t load_u32_raw(const void* p) {
  uint32_t v;
  asm volatile("ld.global.u32 %0, [%1];\n" : "=r"(v) : "l"(p));
  return v;
}
SFM_DEVICE uint32_t load_u16_raw(const void* p) {
  unsigned short v;
  asm volatile("ld.global.u16 %0, [%1];\n" : "=h"(v) : "l"(p));
  return v;
}

// f(integral_constant<I>), ..., f(integral_constant<N - 1>): register arrays indexed by
// the constant.
template <int I, int N, typename F>
SFM_DEVICE void static_for(F&& f) {
  if constexpr (I < N) {
    f(std::integral_constant<int, I>{});
    static_for<I + 1, N>(f);
  }
}

// f(integral_constant<min(len, L)>) for len >= 1.
template <int L, typename F>
SFM_DEVICE void with_static_len(int len, F&& f) {
  if constexpr (L == 1) {
    f(std::integral_constant<int, 1>{});
  } else if (len >= L) {
    f(std::integral_constant<int, L>{});
  } else {
    with_static_len<L - 1>(len, f);
  }
}

// Keeps the compiler from moving or copying an accumulator across wgmma instructions
// (which made ptxas wait for every wgmma: C7517).
template <int N>
SFM_DEVICE void fence_accumulators(float (&r)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(r[i])::"memory");
}

// Shared memory of a CTA with a slice of `steps` K steps: x in 128-byte K columns
// (reused for the partial tile), plus slack to align it to a 1024-byte swizzle atom.
__host__ __device__ inline int smem_bytes(int ntok, int steps) {
  return std::max((steps + 1) / 2 * ntok * 128, ntok * kRedPitch * 4) + 1024;
}

// CTA (x, y): row block x >> log2_cluster, K slice x & (cluster - 1), tokens
// [NTOK y, NTOK y + NTOK).
template <EpilogueKind EPI, Activation ACT, int NTOK>
__global__ void __launch_bounds__(kThreads, NTOK <= SFM_RS_THREE_PER_SM_TOKENS ? 3 : 1)
    rs_gemm_kernel(const RsParams p) {
  constexpr bool kGated = EPI == EpilogueKind::kGatedToFp8;
  constexpr int kAcc = NTOK / 2;
  extern __shared__ __align__(128) uint8_t smem_raw[];
  SFM_TRACE_DECLARE;
  SFM_TRACE_POINT(0);
  uint8_t* smem = smem_raw + ((1024 - (smem_u32(smem_raw) & 1023)) & 1023);

  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;
  const int g = lane >> 2;
  const int tq = lane & 3;
  const int cluster = 1 << p.log2_cluster;
  const int rank = blockIdx.x & (cluster - 1);
  const int block = blockIdx.x >> p.log2_cluster;
  const int st_begin = (rank * p.k_steps) >> p.log2_cluster;
  const int st_end = ((rank + 1) * p.k_steps) >> p.log2_cluster;
  const int t0 = blockIdx.y * NTOK;
  const int m_here = min(p.m - t0, NTOK);

  // This lane's A rows 16 warp + g and + 8: for the gated GEMM, gate and up of hidden
  // unit 32 block + 8 warp + g; otherwise weight rows 64 block + 16 warp + g (+ 8).
  // Clamped: stores past n_out are masked.
  const uint8_t* wrow[2];
  if constexpr (kGated) {
    const int unit = min(block * 32 + warp * 8 + g, p.n_out - 1);
    wrow[0] = p.w + static_cast<int64_t>(unit) * p.k;
    wrow[1] = p.w + static_cast<int64_t>(p.n_out + unit) * p.k;
  } else {
    const int row = block * kRows + warp * 16 + g;
    wrow[0] = p.w + static_cast<int64_t>(min(row, p.n_out - 1)) * p.k;
    wrow[1] = p.w + static_cast<int64_t>(min(row + 8, p.n_out - 1)) * p.k;
  }
  uint4 wv[kChunkSteps][2];
  // Every slot of the chunk is loaded: steps past the slice re-read its last step, and
  // past K the lane re-reads the row's last 16 bytes instead of loading zeros (x is
  // zero there, and an FP8 weight is finite or NaN, where a NaN makes the row's true
  // sum NaN anyway). Predicated or zero-filled loads made ptxas load into temporaries
  // and copy them, which waited for the data before griddepcontrol.wait.
  auto load_chunk = [&](int st0) {
#pragma unroll
    for (int c = 0; c < kChunkSteps; ++c) {
      const int kb = min(min(st0 + c, st_end - 1) * kStepBytes + tq * 16, p.k - 16);
#pragma unroll
      for (int r = 0; r < 2; ++r) wv[c][r] = load_weights_raw(wrow[r] + kb);
    }
  };
  // The loaded words, transposed into the lane's A fragments (top comment).
  // Unconditional, like the loads: a conditional update in place made ptxas copy every
  // loaded register right after griddepcontrol.wait, waiting for the data. Afterwards
  // wv[c][kk] holds the A fragments of k32 block kk of step c (rows g and g + 8
  // interleaved, as the wgmma operand wants them).
  auto transpose_chunk = [&]() {
#pragma unroll
    for (int c = 0; c < kChunkSteps; ++c) {
      const uint4 b0 = quad_transpose(wv[c][0], lane);
      const uint4 b1 = quad_transpose(wv[c][1], lane);
      wv[c][0] = make_uint4(b0.x, b1.x, b0.y, b1.y);
      wv[c][1] = make_uint4(b0.z, b1.z, b0.w, b1.w);
    }
  };
  // Weights never depend on the previous kernel: fetch them before waiting for it.
  load_chunk(st_begin);
  // Nor do the epilogue's per-column operands (scales, bias: parameters, like the
  // weights). Loaded after x, they had cost a second round trip after the wait.
  // Reduction layout (below): this thread sums columns `quad` of the tile.
  constexpr int kQuads = kGated ? 8 : 16;  // 4-column groups of the tile's outputs
  const int quad = threadIdx.x & (kQuads - 1);
  const int col0 = (kGated ? block * 32 : block * kRows) + 4 * quad;  // first output column
  constexpr int kSums = kGated ? 2 : 1;
  const bool has_bias = !kGated && p.epi.bias != nullptr;
  uint32_t col_w_bits[4][kSums];
  uint32_t bias_bits[4];
#pragma unroll
  for (int c = 0; c < 4; ++c) {
    const int col = min(col0 + c, p.n_out - 1);
#pragma unroll
    for (int s = 0; s < kSums; ++s) {
      col_w_bits[c][s] =
          load_u32_raw(weight_scale_ptr(p.epi, static_cast<int64_t>(s) * p.n_out + col));
    }
    // Without a bias: any valid address (the value is not used); no predicated load.
    bias_bits[c] = load_u16_raw(has_bias ? static_cast<const void*>(p.epi.bias + col)
                                         : static_cast<const void*>(p.epi.x_scale));
  }
  const uint32_t x_scale_bits = load_u32_raw(p.epi.x_scale);
  const uint32_t hidden_bits =
      EPI == EpilogueKind::kBiasToBf16 ? 0u : load_u32_raw(p.epi.hidden_scale);
  // The weights are usually in long before the previous kernel ends: transpose them
  // while waiting for it, not after (where the shuffles delayed the copy of x). ptxas
  // moves arithmetic across griddepcontrol.wait freely; a wait predicated on every
  // transposed word keeps all of the transposes ahead of it.
  transpose_chunk();  // waits for the weights
  uint32_t transposed = 0;
#pragma unroll
  for (int c = 0; c < kChunkSteps; ++c)
#pragma unroll
    for (int kk = 0; kk < 2; ++kk) transposed ^= wv[c][kk].x ^ wv[c][kk].y ^ wv[c][kk].z ^ wv[c][kk].w;
  SFM_TRACE_POINT(1, transposed);
  asm volatile(
      "{\n .reg .pred p;\n setp.ne.u32 p, %0, 0;\n @p griddepcontrol.wait;\n"
      " @!p griddepcontrol.wait;\n}\n griddepcontrol.launch_dependents;\n" ::"r"(transposed)
      : "memory");
  SFM_TRACE_POINT(2);

  // x[tokens, slice] into shared memory in the 128-byte swizzle layout wgmma reads:
  // K column kc (128 bytes, two steps) of token n is the row kc NTOK 128 + n 128, its
  // 16-byte chunk q stored at chunk q ^ (n % 8). cp.async, all in flight at once; a
  // warp instruction copies 128 contiguous bytes of each of 4 tokens. Zeros past K (the
  // weights are zero there too, but 0 * NaN is not); token rows past M stay unwritten:
  // they only reach accumulator columns that are never stored.
  const int steps = st_end - st_begin;
  const int columns = (steps + 1) >> 1;
  {
    const int q = lane & 7;
    const int last_col_chunks = steps & 1 ? 4 : 8;  // the slice may end mid-column
    for (int n = warp * 4 + (lane >> 3); n < m_here; n += kThreads / 8) {
      const uint8_t* src =
          p.x + static_cast<int64_t>(t0 + n) * p.k + st_begin * kStepBytes + q * 16;
      const uint32_t dst = smem_u32(smem) + n * 128 + ((q ^ (n & 7)) * 16);
      for (int kc = 0; kc < columns; ++kc) {
        if (kc == columns - 1 && q >= last_col_chunks) break;
        const bool ok = (st_begin * kStepBytes + kc * 128 + q * 16) < p.k;
        mma_gemm::cp_async_16(dst + kc * NTOK * 128, ok ? src + kc * 128 : p.x, ok);
      }
    }
    mma_gemm::cp_async_commit();
  }

  mma_gemm::cp_async_wait<0>();
  // Generic-proxy writes, read by wgmma through the async proxy.
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
  __syncthreads();  // x is in shared memory
  SFM_TRACE_POINT(3);

  float acc[kAcc];
  float part[kAcc];
#pragma unroll
  for (int i = 0; i < kAcc; ++i) acc[i] = part[i] = 0.0f;
  // Promotion group g of a chunk (chunk steps kPromoteSteps g ..), LEN steps of it, as
  // straight-line code: no branch while a wgmma is in flight (with one, ptxas waited
  // for every step's wgmmas, C7517).
  auto promotion_group = [&](auto len, auto g, int sl0) {
    constexpr int kLen = decltype(len)::value;
    constexpr int kFirst = decltype(g)::value * kPromoteSteps;
    fence_accumulators(part);
    wgmma_fence();  // A registers written since the last wgmma
#pragma unroll
    for (int j = 0; j < kLen; ++j) {
#pragma unroll
      for (int kk = 0; kk < 2; ++kk) {
        const uint4 w = wv[kFirst + j][kk];
        const uint32_t a[4] = {w.x, w.y, w.z, w.w};
        const int sl = sl0 + kFirst + j;  // step within the slice
        const uint8_t* at = smem + (sl >> 1) * NTOK * 128 + (sl & 1) * 64 + kk * 32;
        wgmma_rs<NTOK>(part, a, wgmma_gemm::smem_desc(at), j == 0 && kk == 0 ? 0 : 1);
      }
    }
    wgmma_commit();
    wgmma_wait<0>();
    fence_accumulators(part);
#pragma unroll
    for (int i = 0; i < kAcc; ++i) acc[i] += part[i];
  };
#pragma unroll 1
  for (int st0 = st_begin; st0 < st_end; st0 += kChunkSteps) {
    if (st0 != st_begin) {
      load_chunk(st0);
      transpose_chunk();
    }
    const int chunk_steps = min(kChunkSteps, st_end - st0);
    static_for<0, kChunkSteps / kPromoteSteps>([&](auto g) {
      const int len = chunk_steps - decltype(g)::value * kPromoteSteps;
      if (len > 0) {
        with_static_len<kPromoteSteps>(len, [&](auto l) { promotion_group(l, g, st0 - st_begin); });
      }
    });
  }

  SFM_TRACE_POINT(4, __float_as_uint(acc[kAcc - 1]));
  // Park this slice's tile as [token][row] fp32 (over x, which every wgmma has read).
  __syncthreads();
  float* red = reinterpret_cast<float*>(smem);
#pragma unroll
  for (int j = 0; j < NTOK / 8; ++j)
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
      for (int c = 0; c < 2; ++c)
        red[(8 * j + 2 * tq + c) * kRedPitch + warp * 16 + g + 8 * h] = acc[4 * j + 2 * h + c];
  if (cluster > 1) {
    cluster_sync();
  } else {
    __syncthreads();
  }
  SFM_TRACE_POINT(5);

  // CTA `rank` reduces tokens [rank S, rank S + S) of the tile over every rank, in rank
  // order, and stores them; S = the tile's real tokens over the cluster, rounded up (a
  // share of NTOK instead left the last ranks idle at small M while the first did two
  // tokens per thread). Dense: 4 tile rows (= output columns) per thread; gated: gate
  // rows 16 w + 4 i .. and their up rows + 8 (hidden units 8 w + 4 i ..).
  // A token's loads from all ranks are in flight at once; the loop over tokens stays
  // rolled (an unrolled epilogue overflowed the instruction cache).
  {
    const float x_scale = __uint_as_float(x_scale_bits);
    const float inv_hidden =
        EPI == EpilogueKind::kBiasToBf16 ? 1.0f : __frcp_rn(__uint_as_float(hidden_bits));
    float col_w[4][kSums];
    float col_bias[4];
#pragma unroll
    for (int c = 0; c < 4; ++c) {
#pragma unroll
      for (int s = 0; s < kSums; ++s) col_w[c][s] = __uint_as_float(col_w_bits[c][s]);
      col_bias[c] = has_bias ? __uint_as_float(bias_bits[c] << 16) : 0.0f;
    }
    constexpr int kTokStride = kThreads / kQuads;
    // No loads for columns past n_out: every value loaded from a peer is used before
    // the final (relaxed) cluster barrier, so no load is in flight when the peer exits.
    const int share = (m_here + cluster - 1) >> p.log2_cluster;
    const int tok_end = col0 < p.n_out ? min((rank + 1) * share, m_here) : 0;
    const int row0 = kGated ? (quad >> 1) * 16 + (quad & 1) * 4 : quad * 4;
    const uint32_t red_base = smem_u32(red);
#pragma unroll 1
    for (int tok = rank * share + threadIdx.x / kQuads; tok < tok_end; tok += kTokStride) {
      float4 got[kMaxCluster][kSums];
#pragma unroll
      for (int r = 0; r < kMaxCluster; ++r) {
        if (r >= cluster) break;
#pragma unroll
        for (int s = 0; s < kSums; ++s) {
          const int at = tok * kRedPitch + row0 + 8 * s;
          got[r][s] = cluster > 1 ? load_peer(red_base + at * 4, r)
                                  : *reinterpret_cast<const float4*>(red + at);
        }
      }
      float4 sum[kSums];
#pragma unroll
      for (int s = 0; s < kSums; ++s) sum[s] = got[0][s];
#pragma unroll
      for (int r = 1; r < kMaxCluster; ++r) {
        if (r >= cluster) break;
#pragma unroll
        for (int s = 0; s < kSums; ++s) {
          sum[s].x += got[r][s].x;
          sum[s].y += got[r][s].y;
          sum[s].z += got[r][s].z;
          sum[s].w += got[r][s].w;
        }
      }
      float v[4];
      const float* sv[kSums];
#pragma unroll
      for (int s = 0; s < kSums; ++s) sv[s] = &sum[s].x;
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        if constexpr (kGated) {
          const float gate = sv[0][c] * (x_scale * col_w[c][0]);
          const float up = sv[1][c] * (x_scale * col_w[c][1]);
          v[c] = activate<ACT>(gate) * up * inv_hidden;
        } else {
          const float y = sv[0][c] * (x_scale * col_w[c][0]) + col_bias[c];
          v[c] = EPI == EpilogueKind::kBiasGeluToFp8 ? gelu_tanh(y) * inv_hidden : y;
        }
      }
      const int64_t at = static_cast<int64_t>(t0 + tok) * p.n_out + col0;
      if constexpr (EPI == EpilogueKind::kBiasToBf16) {
        const __nv_bfloat162 lo = __floats2bfloat162_rn(v[0], v[1]);
        const __nv_bfloat162 hi = __floats2bfloat162_rn(v[2], v[3]);
        uint2 packed;
        packed.x = *reinterpret_cast<const uint32_t*>(&lo);
        packed.y = *reinterpret_cast<const uint32_t*>(&hi);
        *reinterpret_cast<uint2*>(static_cast<__nv_bfloat16*>(p.out) + at) = packed;
      } else {
        *reinterpret_cast<uint32_t*>(static_cast<uint8_t*>(p.out) + at) =
            q_quad(v[0], v[1], v[2], v[3]);
      }
    }
  }
  SFM_TRACE_POINT(6);
  if (cluster > 1) cluster_sync_relaxed();  // peers read this CTA's tile until here
  SFM_TRACE_POINT(7);
  SFM_TRACE_COMMIT(100 + static_cast<int>(EPI));
}

// Tokens per CTA (the wgmma N) for m tokens; more tokens than 128: grid.y.
inline int tokens_per_cta(int64_t m) { return m <= 32 ? 32 : m <= 64 ? 64 : 128; }

// K slices (cluster size): at least enough that a slice's x fits in shared memory and,
// up to kMaxCluster, that a slice's weights fit in one chunk of registers; more while
// all CTAs still fit on the GPU at SFM_RS_FILL_CTAS_PER_SM (2) per SM.
inline int pick_cluster(int64_t blocks, int k_steps, int ntok, int smem_limit, int sms) {
  int c = 1;
  while (c < kMaxCluster && k_steps >= 2 * c) {
    const int slice = static_cast<int>(host_ceil_div(k_steps, c));
    const bool too_big = smem_bytes(ntok, slice) > smem_limit || slice > kChunkSteps;
    if (!too_big && blocks * 2 * c > int64_t(SFM_RS_FILL_CTAS_PER_SM) * sms) break;
    c *= 2;
  }
  return c;
}

inline int64_t row_blocks(EpilogueKind epi, int64_t n_out) {
  return host_ceil_div(n_out, epi == EpilogueKind::kGatedToFp8 ? 32 : kRows);
}

// How an [m, k] x [n_out] problem maps onto the device: tokens per CTA, K slices, and
// whether it fits (whole 4-column stores, a K slice of x within shared memory).
struct Plan {
  int ntok = 0;
  int cluster = 0;
  bool fits = false;
};

inline Plan make_plan(EpilogueKind epi, int64_t m, int64_t k, int64_t n_out, int dev) {
  Plan plan;
  if (k > 0x7fffffff || n_out > 0x7fffffff || n_out % 4 != 0 || k % 16 != 0) return plan;
  const int k_steps = static_cast<int>(host_ceil_div(k, kStepBytes));
  const int limit = std::min(smem_per_block_optin(dev), kSmemBytes);
  plan.ntok = tokens_per_cta(m);
  plan.cluster = pick_cluster(row_blocks(epi, n_out), k_steps, plan.ntok, limit, sm_count(dev));
  plan.fits =
      smem_bytes(plan.ntok, static_cast<int>(host_ceil_div(k_steps, plan.cluster))) <= limit;
  return plan;
}

template <EpilogueKind EPI>
bool supports(int64_t m, int64_t k, int64_t n_out, int dev) {
  return make_plan(EPI, m, k, n_out, dev).fits;
}

template <EpilogueKind EPI, Activation ACT, int NTOK>
cudaError_t launch_tiles(const RsParams& p, int64_t blocks, int cluster, cudaStream_t stream) {
  const int64_t token_tiles = host_ceil_div(p.m, NTOK);
  if (token_tiles > 65535 || blocks * cluster > 0x7fffffff) return cudaErrorInvalidConfiguration;
  constexpr auto kernel = rs_gemm_kernel<EPI, ACT, NTOK>;
  cudaError_t e = allow_dynamic_smem<kernel>(kSmemBytes);
  if (e != cudaSuccess) return e;
  cudaLaunchConfig_t config = {};
  config.gridDim =
      dim3(static_cast<unsigned>(blocks * cluster), static_cast<unsigned>(token_tiles), 1);
  config.blockDim = dim3(kThreads, 1, 1);
  config.dynamicSmemBytes = static_cast<size_t>(
      smem_bytes(NTOK, static_cast<int>(host_ceil_div(p.k_steps, cluster))));
  config.stream = stream;
  cudaLaunchAttribute attr[2];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  attr[1].id = cudaLaunchAttributeClusterDimension;
  attr[1].val.clusterDim.x = static_cast<unsigned>(cluster);
  attr[1].val.clusterDim.y = 1;
  attr[1].val.clusterDim.z = 1;
  config.attrs = attr;
  config.numAttrs = cluster > 1 ? 2 : 1;
  return cudaLaunchKernelEx(&config, kernel, p);
}

// out[m, n_out] = epilogue(x[m, k] w^T), for problems that fit (make_plan). The gated
// GEMM reads 2 n_out weight rows (gate rows, then up rows).
// Called through MlpGemms, which returns empty problems and looks up the device `dev`.
struct Launch {
  template <EpilogueKind EPI, Activation ACT>
  static cudaError_t run(const uint8_t* x, const uint8_t* w, int64_t m, int64_t k, int64_t n_out,
                         void* out, const EpilogueParams& epi, int dev,
                         cudaStream_t stream) {
    const Plan plan = make_plan(EPI, m, k, n_out, dev);
    if (!plan.fits) return cudaErrorInvalidValue;
    SFM_TRACE_BIND();
    auto p = register_stream_params<RsParams>(x, w, m, k, n_out, kStepBytes, out, epi);
    p.log2_cluster = host_log2_pow2(plan.cluster);
    const int64_t blocks = row_blocks(EPI, n_out);
    switch (plan.ntok) {
      case 32: return launch_tiles<EPI, ACT, 32>(p, blocks, plan.cluster, stream);
      case 64: return launch_tiles<EPI, ACT, 64>(p, blocks, plan.cluster, stream);
      default: return launch_tiles<EPI, ACT, 128>(p, blocks, plan.cluster, stream);
    }
  }
};

// The three GEMMs of the MLPs, as the backends call them.
using Gemms = MlpGemms<Launch>;

}  // namespace wgmma_rs
}  // namespace
}  // namespace static_fp8_mlp
