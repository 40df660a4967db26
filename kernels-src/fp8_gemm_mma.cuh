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
//
// Split-K (sm_90+): for decode-sized batches a weight tile is too little work for one
// CTA, and the down projection has too few tiles to fill the GPU. gridDim.z CTAs then
// form a thread-block cluster that splits K; each keeps its partial accumulators in
// shared memory and rank 0 sums them over distributed shared memory before the
// epilogue. One launch, no global workspace, no memset, deterministic order.
#pragma once

#include <cooperative_groups.h>
#include <cuda_bf16.h>

#include <atomic>
#include <cstdint>

#include "backend_registry.h"
#include "common.cuh"
#include "fp8_convert.cuh"
#include "mlp_epilogues.cuh"
#include "tma_util.cuh"

// Internal linkage: every arch-group TU includes this file and must get its own copy
// (its own fatbin), never one merged by the linker with another group's.
namespace static_fp8_mlp {
namespace {
namespace mma_gemm {

template <int BW, int BT, int WARPS_W, int WARPS_T, int STAGES, int BK = 128>
struct TileConfig {
  static constexpr int kBW = BW;  // weight rows per CTA (gate + up rows when gated)
  static constexpr int kBT = BT;  // tokens per CTA
  // Bytes (= FP8 elements) of K per pipeline stage. Longer runs per weight row are
  // kinder to DRAM when streaming weights (decode); 128 suffices when compute bound.
  static constexpr int kBK = BK;
  static_assert(BK % 128 == 0, "whole 128-byte swizzle rows");
  static constexpr int kChunksPerRow = kBK / 16;
  static constexpr int kSubTiles = kBK / 128;  // 128-byte-wide column blocks per stage
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

// Zeroes an [MI][NI][4] array of mma.sync accumulator fragments.
template <int MI, int NI>
SFM_DEVICE void zero_fragments(float (&acc)[MI][NI][4]) {
#pragma unroll
  for (int mi = 0; mi < MI; ++mi)
#pragma unroll
    for (int ni = 0; ni < NI; ++ni)
#pragma unroll
      for (int r = 0; r < 4; ++r) acc[mi][ni][r] = 0.0f;
}

SFM_DEVICE void mma_fp8(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm(
      "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 "
      "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Byte offset of 16-byte chunk `chunk` (along K) of stage row `row` (weight rows
// [0, kBW), then token rows). A stage is stored as 128-byte-wide column blocks, weight
// blocks first, exactly the layout TMA's 128-byte swizzle writes box by box: within a
// block, row r's chunk c sits at r * 128 + ((c ^ r % 8) * 16), so the 8 rows an ldmatrix
// phase reads hit 8 different bank groups.
template <typename Cfg>
SFM_DEVICE uint32_t tile_offset(int row, int chunk) {
  const int block = chunk >> 3;
  const uint32_t swz = static_cast<uint32_t>(((chunk & 7) ^ (row & 7)) << 4);
  if (row < Cfg::kBW) return block * (Cfg::kBW * 128) + row * 128 + swz;
  return Cfg::kSubTiles * Cfg::kBW * 128 + block * (Cfg::kBT * 128) + (row - Cfg::kBW) * 128 + swz;
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

// Shared memory a config needs: the stage ring, 1 KB to align it for TMA's 128-byte
// swizzle, and one mbarrier per stage.
template <typename Cfg>
constexpr int smem_bytes() {
  return Cfg::kPipelineBytes + 1024 + 8 * Cfg::kStages;
}

// TMA = true (sm_90+): one thread feeds the ring with bulk tensor copies (far more
// bytes in flight per SM than cp.async allows, which decode needs); else every thread
// issues cp.async. The tensor maps are unused when TMA = false.
template <typename Cfg, EpilogueKind EPI, Activation ACT, bool TMA>
__global__ void __launch_bounds__(Cfg::kThreads)
    fp8_gemm_kernel(const __grid_constant__ CUtensorMap tma_x,
                    const __grid_constant__ CUtensorMap tma_w, const GemmParams p) {
  constexpr bool kGated = EPI == EpilogueKind::kGatedToFp8;
  constexpr int kOutCols = kGated ? Cfg::kBW / 2 : Cfg::kBW;  // output columns per CTA
  constexpr int kOutBytes = OutputTraits<EPI>::kBytes;
  static_assert(!kGated || Cfg::kMI % 2 == 0, "gated warps need gate/up m-tile pairs");

  extern __shared__ __align__(1024) uint8_t smem_raw[];
  uint8_t* smem = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) &
                                             ~uintptr_t(1023));
  uint64_t* full = reinterpret_cast<uint64_t*>(smem + Cfg::kPipelineBytes);

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
  const int k_tiles_total = (p.k + Cfg::kBK - 1) / Cfg::kBK;
  const int splits = gridDim.z;  // > 1 only in a cluster launch (sm_90+)
  const int kt_begin = static_cast<int>(static_cast<int64_t>(blockIdx.z) * k_tiles_total / splits);
  const int kt_end = static_cast<int>(static_cast<int64_t>(blockIdx.z + 1) * k_tiles_total / splits);
  const int k_tiles = kt_end - kt_begin;
  // Each CTA starts its K walk at a different tile: CTAs in lockstep at one K offset
  // of rows a power of two apart would all hit the same DRAM channels.
  const int k_rotation = k_tiles > 0 ? static_cast<int>(blockIdx.x % k_tiles) : 0;
  auto load_stage = [&](int stage, int kt) {
    uint8_t* base = smem + stage * Cfg::kStageBytes;
    int rotated = kt + k_rotation;
    if (rotated >= k_tiles) rotated -= k_tiles;
    const int k0 = (kt_begin + rotated) * Cfg::kBK;
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
      cp_async_16(smem_addr(base + tile_offset<Cfg>(row, chunk)), src, valid);
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
  zero_fragments(acc);

  // ---- one stage's MMAs (shared by both pipelines) ----
  auto compute_stage = [&](const uint8_t* stage) {
#pragma unroll
    for (int ks = 0; ks < Cfg::kBK / 32; ++ks) {
      uint32_t a[Cfg::kMI][4];
#pragma unroll
      for (int mi = 0; mi < Cfg::kMI; ++mi) {
        const int row = mtile_row(mi) + (lane & 15);
        const int chunk = ks * 2 + (lane >> 4);
        ldmatrix_x4(smem_addr(stage + tile_offset<Cfg>(row, chunk)), a[mi][0], a[mi][1], a[mi][2],
                    a[mi][3]);
      }
      uint32_t b[Cfg::kNI][2];
      const int tok_base = Cfg::kBW + warp_t * Cfg::kWarpT;
      if constexpr (Cfg::kNI == 1) {
        const int row = tok_base + (lane & 7);
        const int chunk = ks * 2 + ((lane >> 3) & 1);
        ldmatrix_x2(smem_addr(stage + tile_offset<Cfg>(row, chunk)), b[0][0], b[0][1]);
      } else {
#pragma unroll
        for (int ni = 0; ni < Cfg::kNI; ni += 2) {
          const int row = tok_base + ni * 8 + (lane & 7) + ((lane >> 4) << 3);
          const int chunk = ks * 2 + ((lane >> 3) & 1);
          ldmatrix_x4(smem_addr(stage + tile_offset<Cfg>(row, chunk)), b[ni][0], b[ni][1],
                      b[ni + 1][0], b[ni + 1][1]);
        }
      }
#pragma unroll
      for (int mi = 0; mi < Cfg::kMI; ++mi)
#pragma unroll
        for (int ni = 0; ni < Cfg::kNI; ++ni) mma_fp8(acc[mi][ni], a[mi], b[ni][0], b[ni][1]);
    }
  };

  // ---- pipelined main loop ----
  if constexpr (TMA) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    auto issue = [&](int stage, int kt) {
      uint8_t* base = smem + stage * Cfg::kStageBytes;
      int rotated = kt + k_rotation;
      if (rotated >= k_tiles) rotated -= k_tiles;
      const int k0 = (kt_begin + rotated) * Cfg::kBK;
      tma::mbar_expect_tx(&full[stage], Cfg::kStageBytes);
#pragma unroll
      for (int j = 0; j < Cfg::kSubTiles; ++j) {  // one box per 128-byte column block
        uint8_t* w_block = base + j * Cfg::kBW * 128;
        const int kj = k0 + j * 128;
        if constexpr (kGated) {
          tma::tma_load_2d(w_block, &tma_w, &full[stage], kj, c0);  // gate rows
          tma::tma_load_2d(w_block + (Cfg::kBW / 2) * 128, &tma_w, &full[stage], kj,
                           p.n_out + c0);  // up rows
        } else {
          tma::tma_load_2d(w_block, &tma_w, &full[stage], kj, c0);
        }
        tma::tma_load_2d(base + Cfg::kSubTiles * Cfg::kBW * 128 + j * Cfg::kBT * 128, &tma_x,
                         &full[stage], kj, t0);
      }
    };
    if (tid == 0) {
      for (int s = 0; s < Cfg::kStages; ++s) tma::mbar_init(&full[s], 1);
      asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();
    if (tid == 0) {
      for (int s = 0; s < Cfg::kStages && s < k_tiles; ++s) issue(s, s);
    }
    for (int kt = 0; kt < k_tiles; ++kt) {
      const int s = kt % Cfg::kStages;
      tma::mbar_wait(&full[s], (kt / Cfg::kStages) & 1);
      compute_stage(smem + s * Cfg::kStageBytes);
      __syncthreads();  // every warp is done with stage s before it is refilled
      if (tid == 0 && kt + Cfg::kStages < k_tiles) issue(s, kt + Cfg::kStages);
    }
#endif
  } else {
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
      compute_stage(smem + (kt % Cfg::kStages) * Cfg::kStageBytes);
    }
  }
  cp_async_wait<0>();
  __syncthreads();  // the pipeline buffers are reused below

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if (splits > 1) {
    // Park the partial accumulators in shared memory, then rank 0 adds its peers'.
    constexpr int kAcc = Cfg::kMI * Cfg::kNI * 4;
    float* partial = reinterpret_cast<float*>(smem) + tid * kAcc;
#pragma unroll
    for (int mi = 0; mi < Cfg::kMI; ++mi)
#pragma unroll
      for (int ni = 0; ni < Cfg::kNI; ++ni)
#pragma unroll
        for (int r = 0; r < 4; ++r) partial[(mi * Cfg::kNI + ni) * 4 + r] = acc[mi][ni][r];
    cooperative_groups::cluster_group cluster = cooperative_groups::this_cluster();
    cluster.sync();
    const bool leader = cluster.block_rank() == 0;
    if (leader) {
      for (int peer = 1; peer < splits; ++peer) {
        const float* theirs = cluster.map_shared_rank(partial, peer);
#pragma unroll
        for (int mi = 0; mi < Cfg::kMI; ++mi)
#pragma unroll
          for (int ni = 0; ni < Cfg::kNI; ++ni)
#pragma unroll
            for (int r = 0; r < 4; ++r) acc[mi][ni][r] += theirs[(mi * Cfg::kNI + ni) * 4 + r];
      }
    }
    cluster.sync();  // peers' shared memory must outlive the leader's reads
    if (!leader) return;
    __syncthreads();
  }
#endif

  // ---- epilogue: registers -> shared (output dtype) ----
  constexpr int kPitch = kOutCols * kOutBytes + 16;  // +16 bytes: fewer bank conflicts
  uint8_t* out_tile = smem;
  const float x_scale = __ldg(p.epi.x_scale);
  const float inv_hidden = EPI == EpilogueKind::kBiasToBf16 ? 1.0f : inverse_hidden_scale(p.epi);
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
            *dst = q_one(activate<ACT>(g) * u * inv_hidden);
          } else if constexpr (EPI == EpilogueKind::kBiasGeluToFp8) {
            *dst = q_one(gelu_tanh(v * s_a + bias) * inv_hidden);
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

// Tiles of this config for a problem (so callers can choose a split-K factor).
template <typename Cfg, EpilogueKind EPI>
int64_t tile_count(const GemmParams& p) {
  constexpr int kOutCols = EPI == EpilogueKind::kGatedToFp8 ? Cfg::kBW / 2 : Cfg::kBW;
  return host_ceil_div(p.m, Cfg::kBT) * host_ceil_div(p.n_out, kOutCols);
}

template <typename Cfg, EpilogueKind EPI, Activation ACT, bool TMA>
cudaError_t launch(const GemmParams& p, int splits, cudaStream_t stream) {
  if (p.m == 0 || p.n_out == 0) return cudaSuccess;
  constexpr bool kGated = EPI == EpilogueKind::kGatedToFp8;
  constexpr int kOutCols = kGated ? Cfg::kBW / 2 : Cfg::kBW;
  constexpr auto kernel = fp8_gemm_kernel<Cfg, EPI, ACT, TMA>;
  constexpr int smem = smem_bytes<Cfg>();
  CUtensorMap tma_x{}, tma_w{};
  if constexpr (TMA) {
    cudaError_t e = tma::make_tma(&tma_x, p.x, p.m, p.k, Cfg::kBT, 128);
    if (e != cudaSuccess) return e;
    e = tma::make_tma(&tma_w, p.w, kGated ? 2 * int64_t(p.n_out) : p.n_out, p.k,
                      kGated ? Cfg::kBW / 2 : Cfg::kBW, 128);
    if (e != cudaSuccess) return e;
  }
  static_assert(Cfg::kBT * (kOutCols * OutputTraits<EPI>::kBytes + 16) <= Cfg::kPipelineBytes,
                "output staging must fit in the pipeline buffers");
  cudaError_t e = allow_dynamic_smem<kernel>(smem);
  if (e != cudaSuccess) return e;
  const int64_t t_tiles = host_ceil_div(p.m, Cfg::kBT);
  const int64_t w_tiles = host_ceil_div(p.n_out, kOutCols);
  const int64_t blocks = t_tiles * w_tiles;
  if (blocks > 0x7fffffff) return cudaErrorInvalidConfiguration;
  if (splits <= 1) {
    kernel<<<static_cast<unsigned>(blocks), Cfg::kThreads, smem, stream>>>(tma_x, tma_w, p);
    return cudaGetLastError();
  }
  static_assert(Cfg::kThreads * Cfg::kMI * Cfg::kNI * 4 * 4 <= Cfg::kPipelineBytes,
                "split-K partials must fit in the pipeline buffers");
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(static_cast<unsigned>(blocks), 1, static_cast<unsigned>(splits));
  config.blockDim = dim3(Cfg::kThreads, 1, 1);
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = 1;
  attr[0].val.clusterDim.y = 1;
  attr[0].val.clusterDim.z = static_cast<unsigned>(splits);
  config.attrs = attr;
  config.numAttrs = 1;
  return cudaLaunchKernelEx(&config, kernel, tma_x, tma_w, p);
}

}  // namespace mma_gemm
}  // namespace
}  // namespace static_fp8_mlp
