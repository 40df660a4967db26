// Portable FP8 GEMM with fused MLP epilogues, built on warp-level
// `mma.sync.m16n8k32.e4m3` (sm_89 and newer: Ada, Hopper, Blackwell).
//
// Orientation ("swap AB"): the weights are the MMA's M operand (16-row granularity)
// and the tokens its N operand (8-token granularity). Decode batches of 1..16 tokens
// then waste little of the tensor core, and both operands are K-major in memory, which
// is the only layout FP8 mma.sync accepts: w[N, K] and x[M, K] row-major.
//
// One CTA computes a tile of kBW weight rows x kBT tokens. Tiles of 128 bytes of K are
// streamed through a kStages-deep cp.async pipeline into shared memory, swizzled in
// 16-byte chunks (chunk ^ row % 8) so ldmatrix reads are conflict free. For the gated
// MLP the CTA's weight tile holds kBW/2 gate rows and the matching kBW/2 up rows, and
// each warp owns gate and up m-tiles at the same offsets, so one thread holds gate and
// up accumulators of the same (token, hidden unit) and the SwiGLU/GeGLU epilogue is
// register-local. The epilogue stages the output tile through shared memory and
// writes it with coalesced 16-byte stores.
#pragma once

#include <cuda_bf16.h>

#include <atomic>
#include <cstdint>

#include "backend_registry.h"
#include "common.cuh"
#include "fp8_convert.cuh"
#include "mlp_epilogues.cuh"

// Internal linkage: every arch-group TU includes this file and must get its own copy
// (its own fatbin), never one merged by the linker with another group's.
namespace static_fp8_mlp {
namespace {
namespace mma_gemm {

template <int BW, int BT, int WARPS_W, int WARPS_T, int STAGES>
struct TileConfig {
  static constexpr int kBW = BW;  // weight rows per CTA (gate + up rows when gated)
  static constexpr int kBT = BT;  // tokens per CTA
  static constexpr int kBK = 128; // bytes (= FP8 elements) of K per pipeline stage
  static constexpr int kChunksPerRow = kBK / 16;
  static constexpr int kWarpsW = WARPS_W;
  static constexpr int kWarpsT = WARPS_T;
  static constexpr int kThreads = 32 * WARPS_W * WARPS_T;
  static constexpr int kStages = STAGES;
  static constexpr int kWarpW = BW / WARPS_W;
  static constexpr int kWarpT = BT / WARPS_T;
  static constexpr int kMI = kWarpW / 16;
  static constexpr int kNI = kWarpT / 8;
  static constexpr int kStageBytes = (BW + BT) * kBK;
  static constexpr int kPipelineBytes = STAGES * kStageBytes;
  static_assert(kWarpW % 16 == 0 && kWarpT % 8 == 0, "warp tile must be whole MMA tiles");
  static_assert(kNI == 1 || kNI % 2 == 0, "token tiles are loaded in pairs");
};

// Grouped rasterisation: kGroup consecutive token tiles walk the weight tiles
// together, so a weight tile is reused from L2 by several CTAs in flight.
constexpr int kRasterGroup = 8;

SFM_DEVICE uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

SFM_DEVICE void cp_async_16(uint32_t dst, const void* src, bool valid) {
  const int src_bytes = valid ? 16 : 0;  // 0 -> zero-fill, nothing read
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src),
               "r"(src_bytes));
}
SFM_DEVICE void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
SFM_DEVICE void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

SFM_DEVICE void ldmatrix_x4(uint32_t addr, uint32_t& r0, uint32_t& r1, uint32_t& r2,
                            uint32_t& r3) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(addr));
}
SFM_DEVICE void ldmatrix_x2(uint32_t addr, uint32_t& r0, uint32_t& r1) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n"
               : "=r"(r0), "=r"(r1)
               : "r"(addr));
}

SFM_DEVICE void mma_fp8(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm(
      "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 "
      "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Byte offset of 16-byte chunk `chunk` of tile row `row` inside one operand tile.
SFM_DEVICE uint32_t swizzled(int row, int chunk) {
  return static_cast<uint32_t>(row * 128 + ((chunk ^ (row & 7)) << 4));
}

struct GemmParams {
  const uint8_t* x;  // [m, k]
  const uint8_t* w;  // [w_rows, k]
  int m;
  int k;
  int n_out;  // output columns: H for the gated GEMM1, N otherwise
  void* out;  // [m, n_out], FP8 or bf16
  EpilogueParams epi;
};

template <EpilogueKind EPI>
struct OutputTraits {
  using T = uint8_t;
  static constexpr int kBytes = 1;
};
template <>
struct OutputTraits<EpilogueKind::kBiasToBf16> {
  using T = __nv_bfloat16;
  static constexpr int kBytes = 2;
};

template <typename Cfg, EpilogueKind EPI, Activation ACT>
__global__ void __launch_bounds__(Cfg::kThreads)
    fp8_gemm_kernel(const GemmParams p) {
  constexpr bool kGated = EPI == EpilogueKind::kGatedToFp8;
  constexpr int kOutCols = kGated ? Cfg::kBW / 2 : Cfg::kBW;  // output columns per CTA
  constexpr int kOutBytes = OutputTraits<EPI>::kBytes;
  static_assert(!kGated || Cfg::kMI % 2 == 0, "gated warps need gate/up m-tile pairs");

  extern __shared__ __align__(128) uint8_t smem[];

  // ---- which tile is this CTA's ----
  const int num_t_tiles = (p.m + Cfg::kBT - 1) / Cfg::kBT;
  const int num_w_tiles = (p.n_out + kOutCols - 1) / kOutCols;
  const int per_group = kRasterGroup * num_w_tiles;
  const int group = blockIdx.x / per_group;
  const int first_t = group * kRasterGroup;
  const int group_size = min(num_t_tiles - first_t, kRasterGroup);
  const int in_group = blockIdx.x - group * per_group;
  const int t_tile = first_t + in_group % group_size;
  const int w_tile = in_group / group_size;
  const int t0 = t_tile * Cfg::kBT;
  const int c0 = w_tile * kOutCols;  // first output column of the tile

  const int tid = threadIdx.x;
  const int lane = tid & 31;
  const int warp = tid >> 5;
  const int warp_w = warp % Cfg::kWarpsW;
  const int warp_t = warp / Cfg::kWarpsW;

  // ---- global -> shared loader ----
  const int k_tiles = (p.k + Cfg::kBK - 1) / Cfg::kBK;
  auto load_stage = [&](int stage, int kt) {
    uint8_t* base = smem + stage * Cfg::kStageBytes;
    const int k0 = kt * Cfg::kBK;
    constexpr int kTotal = (Cfg::kBW + Cfg::kBT) * Cfg::kChunksPerRow;
#pragma unroll
    for (int c = tid; c < kTotal; c += Cfg::kThreads) {
      const int row = c / Cfg::kChunksPerRow;
      const int chunk = c % Cfg::kChunksPerRow;
      const int kk = k0 + chunk * 16;
      const uint8_t* src;
      bool valid;
      if (row < Cfg::kBW) {
        int64_t grow;
        if constexpr (kGated) {
          const int half = row < Cfg::kBW / 2 ? 0 : 1;
          const int h = c0 + row - half * (Cfg::kBW / 2);
          valid = h < p.n_out;
          grow = static_cast<int64_t>(half) * p.n_out + h;
        } else {
          grow = c0 + row;
          valid = grow < p.n_out;
        }
        valid = valid && kk < p.k;
        src = valid ? p.w + grow * p.k + kk : p.w;
      } else {
        const int t = t0 + row - Cfg::kBW;
        valid = t < p.m && kk < p.k;
        src = valid ? p.x + static_cast<int64_t>(t) * p.k + kk : p.x;
      }
      cp_async_16(smem_addr(base + swizzled(row, chunk)), src, valid);
    }
  };

  // ---- warp tile rows inside the CTA tile ----
  auto mtile_row = [&](int mi) -> int {
    if constexpr (kGated) {
      constexpr int kHalfMI = Cfg::kMI / 2;
      const int base = warp_w * (Cfg::kWarpW / 2);
      return mi < kHalfMI ? base + mi * 16 : Cfg::kBW / 2 + base + (mi - kHalfMI) * 16;
    } else {
      return warp_w * Cfg::kWarpW + mi * 16;
    }
  };

  float acc[Cfg::kMI][Cfg::kNI][4];
#pragma unroll
  for (int mi = 0; mi < Cfg::kMI; ++mi)
#pragma unroll
    for (int ni = 0; ni < Cfg::kNI; ++ni)
#pragma unroll
      for (int r = 0; r < 4; ++r) acc[mi][ni][r] = 0.0f;

  // ---- pipelined main loop ----
#pragma unroll
  for (int s = 0; s < Cfg::kStages - 1; ++s) {
    if (s < k_tiles) load_stage(s, s);
    cp_async_commit();
  }

  for (int kt = 0; kt < k_tiles; ++kt) {
    cp_async_wait<Cfg::kStages - 2>();
    __syncthreads();
    {
      const int next = kt + Cfg::kStages - 1;
      if (next < k_tiles) load_stage(next % Cfg::kStages, next);
      cp_async_commit();
    }
    const uint8_t* stage = smem + (kt % Cfg::kStages) * Cfg::kStageBytes;
#pragma unroll
    for (int ks = 0; ks < Cfg::kBK / 32; ++ks) {
      uint32_t a[Cfg::kMI][4];
#pragma unroll
      for (int mi = 0; mi < Cfg::kMI; ++mi) {
        const int row = mtile_row(mi) + (lane & 15);
        const int chunk = ks * 2 + (lane >> 4);
        ldmatrix_x4(smem_addr(stage + swizzled(row, chunk)), a[mi][0], a[mi][1], a[mi][2],
                    a[mi][3]);
      }
      uint32_t b[Cfg::kNI][2];
      const int tok_base = Cfg::kBW + warp_t * Cfg::kWarpT;
      if constexpr (Cfg::kNI == 1) {
        const int row = tok_base + (lane & 7);
        const int chunk = ks * 2 + ((lane >> 3) & 1);
        ldmatrix_x2(smem_addr(stage + swizzled(row, chunk)), b[0][0], b[0][1]);
      } else {
#pragma unroll
        for (int ni = 0; ni < Cfg::kNI; ni += 2) {
          const int row = tok_base + ni * 8 + (lane & 7) + ((lane >> 4) << 3);
          const int chunk = ks * 2 + ((lane >> 3) & 1);
          ldmatrix_x4(smem_addr(stage + swizzled(row, chunk)), b[ni][0], b[ni][1],
                      b[ni + 1][0], b[ni + 1][1]);
        }
      }
#pragma unroll
      for (int mi = 0; mi < Cfg::kMI; ++mi)
#pragma unroll
        for (int ni = 0; ni < Cfg::kNI; ++ni) mma_fp8(acc[mi][ni], a[mi], b[ni][0], b[ni][1]);
    }
  }
  cp_async_wait<0>();
  __syncthreads();  // the pipeline buffers are reused for the output tile below

  // ---- epilogue: registers -> shared (output dtype) ----
  constexpr int kPitch = kOutCols * kOutBytes + 16;  // +16 bytes: fewer bank conflicts
  uint8_t* out_tile = smem;
  const float x_scale = __ldg(p.epi.x_scale);
  const float hidden_scale = EPI == EpilogueKind::kBiasToBf16 ? 1.0f : __ldg(p.epi.hidden_scale);
  const int group_id = lane >> 2;
  const int tig = lane & 3;

  constexpr int kOutMI = kGated ? Cfg::kMI / 2 : Cfg::kMI;
#pragma unroll
  for (int mi = 0; mi < kOutMI; ++mi) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {  // accumulator rows g and g + 8
      const int col = (kGated ? warp_w * (Cfg::kWarpW / 2) : warp_w * Cfg::kWarpW) + mi * 16 +
                      group_id + half * 8;
      const int gcol = c0 + col;
      const bool col_ok = gcol < p.n_out;
      float s_a = 0.0f, s_b = 0.0f, bias = 0.0f;
      if (col_ok) {
        s_a = row_scale(p.epi, x_scale, gcol);
        if constexpr (kGated) s_b = row_scale(p.epi, x_scale, static_cast<int64_t>(p.n_out) + gcol);
        if constexpr (EPI != EpilogueKind::kGatedToFp8) {
          if (p.epi.bias != nullptr) bias = __bfloat162float(p.epi.bias[gcol]);
        }
      }
#pragma unroll
      for (int ni = 0; ni < Cfg::kNI; ++ni) {
#pragma unroll
        for (int j = 0; j < 2; ++j) {  // tokens tig*2 and tig*2 + 1
          const int tok = warp_t * Cfg::kWarpT + ni * 8 + tig * 2 + j;
          const float v = acc[mi][ni][half * 2 + j];
          uint8_t* dst = out_tile + tok * kPitch + col * kOutBytes;
          if constexpr (EPI == EpilogueKind::kGatedToFp8) {
            const float g = v * s_a;
            const float u = acc[mi + kOutMI][ni][half * 2 + j] * s_b;
            *dst = q_one(__fdiv_rn(activate<ACT>(g) * u, hidden_scale));
          } else if constexpr (EPI == EpilogueKind::kBiasGeluToFp8) {
            *dst = q_one(__fdiv_rn(gelu_tanh(v * s_a + bias), hidden_scale));
          } else {
            *reinterpret_cast<__nv_bfloat16*>(dst) = __float2bfloat16_rn(v * s_a + bias);
          }
        }
      }
    }
  }
  __syncthreads();

  // ---- shared -> global, 16-byte coalesced stores ----
  constexpr int kChunksOut = kOutCols * kOutBytes / 16;
  const int64_t out_pitch = static_cast<int64_t>(p.n_out) * kOutBytes;
  uint8_t* out = static_cast<uint8_t*>(p.out);
  for (int c = tid; c < Cfg::kBT * kChunksOut; c += Cfg::kThreads) {
    const int r = c / kChunksOut;
    const int ch = c % kChunksOut;
    const int t = t0 + r;
    const int64_t byte_col = static_cast<int64_t>(c0) * kOutBytes + ch * 16;
    if (t < p.m && byte_col < out_pitch) {
      *reinterpret_cast<int4*>(out + t * out_pitch + byte_col) =
          *reinterpret_cast<const int4*>(out_tile + r * kPitch + ch * 16);
    }
  }
}

// Raises the dynamic shared-memory limit of one kernel once per device. Setting a
// function attribute is not a stream operation, so this is legal during graph capture.
template <auto Kernel>
cudaError_t allow_smem(int bytes) {
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

template <typename Cfg, EpilogueKind EPI, Activation ACT>
cudaError_t launch(const GemmParams& p, cudaStream_t stream) {
  if (p.m == 0 || p.n_out == 0) return cudaSuccess;
  constexpr int kOutCols = EPI == EpilogueKind::kGatedToFp8 ? Cfg::kBW / 2 : Cfg::kBW;
  constexpr auto kernel = fp8_gemm_kernel<Cfg, EPI, ACT>;
  constexpr int smem = Cfg::kPipelineBytes;
  static_assert(Cfg::kBT * (kOutCols * OutputTraits<EPI>::kBytes + 16) <= smem,
                "output staging must fit in the pipeline buffers");
  cudaError_t e = allow_smem<kernel>(smem);
  if (e != cudaSuccess) return e;
  const int64_t t_tiles = host_ceil_div(p.m, Cfg::kBT);
  const int64_t w_tiles = host_ceil_div(p.n_out, kOutCols);
  const int64_t blocks = t_tiles * w_tiles;
  if (blocks > 0x7fffffff) return cudaErrorInvalidConfiguration;
  kernel<<<static_cast<unsigned>(blocks), Cfg::kThreads, smem, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace mma_gemm
}  // namespace
}  // namespace static_fp8_mlp
