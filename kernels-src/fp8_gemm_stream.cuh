// Weight-streaming FP8 GEMM for decode-sized batches (sm_90+: TMA, mbarriers, clusters).
//
// With few tokens a GEMM is a pass over the weights, so the whole design is about
// keeping DRAM busy: every byte of weight in flight that shared memory can hold, no
// bubble between tiles, and every multiprocessor streaming until the end.
//
// - Persistent and warp-specialised: one CTA per multiprocessor (the ring takes ~200 KB
//   of shared memory). A producer warp walks the CTA's tiles and issues TMA loads into a
//   kStages-deep ring as soon as a slot is free, across tile boundaries; the consumer
//   warps never wait for a tile's start-up latency, only for bytes.
// - Tiles are thin: kBW = 16, 32 or 64 weight rows (the gated GEMM: half gate, half up
//   rows) by kBT tokens, over the whole of K, the width chosen per problem (make_plan).
//   Thin tiles give enough tiles to fill the GPU without split-K even for the down
//   projection (N = 2048 -> 64 tiles of 32 rows).
// - A stage holds kBlocks = 4 128-byte-wide K blocks. 64-row tiles: two consumer
//   warpgroups each multiply two of them with wgmma (m64 x kBT, both operands straight
//   from the ring; the gated GEMM's 4-D box puts a block's gate and up rows next to each
//   other). Narrower tiles: consumer warps split the blocks and the tile's rows
//   (mma.sync m16n8k32 e4m3, weights as the M operand as in fp8_gemm_mma.cuh). At the end
//   of a tile the partial sums meet in shared memory and the fused epilogue of
//   mlp_epilogues.cuh writes the outputs.
// - When even thin tiles cannot fill the GPU (tiles <= SMs / 2), gridDim.z CTAs form a
//   cluster that splits K, each CTA owning one tile, and rank 0 sums the peers' results
//   over distributed shared memory.
// - With one token tile (M <= kBT) every tile of a CTA multiplies the same activations:
//   if they fit (kMaxResidentX), the producer loads the CTA's K range of x into shared
//   memory once, and the ring carries weights only (x re-reads from L2 cost up to half
//   of the weight traffic otherwise).
#pragma once

#include <cooperative_groups.h>
#include <cuda_bf16.h>

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "backend_registry.h"
#include "common.cuh"
#include "fp8_convert.cuh"
#include "fp8_gemm_mma.cuh"  // ldmatrix / mma.sync wrappers
#include "fp8_gemm_wgmma.cuh"  // smem_desc, wgmma fence/commit/wait, SFM_WGMMA_ACC8
#include "mlp_epilogues.cuh"
#include "tma_util.cuh"

// Internal linkage: every arch-group TU includes this file and must get its own copy.
#ifndef SFM_STREAM_WHOLE_STAGE_BOXES  // 0: one TMA box per 128-byte block (for comparison)
#define SFM_STREAM_WHOLE_STAGE_BOXES 1
#endif
#ifndef SFM_STREAM_CTAS_PER_SM  // 1: ~200 KB ring per SM; 2: two CTAs with half each
#define SFM_STREAM_CTAS_PER_SM 1
#endif
#ifndef SFM_STREAM_ROW_GROUPS  // consumer warps per K block of a stage (1 or 2)
#define SFM_STREAM_ROW_GROUPS 2
#endif
#ifndef SFM_STREAM_PDL  // 0: each GEMM waits for the previous kernel to finish before it launches
#define SFM_STREAM_PDL 1
#endif
#ifndef SFM_STREAM_WGMMA  // 1: 64-row tiles multiply with wgmma, 0: mma.sync for every tile
#define SFM_STREAM_WGMMA 1
#endif
#ifndef SFM_STREAM_MAX_RESIDENT_X  // bytes of x a CTA may keep in shared memory
#define SFM_STREAM_MAX_RESIDENT_X (64 * 1024)
#endif

namespace static_fp8_mlp {
namespace {
namespace stream_gemm {

template <int BW, int BT>
struct StreamConfig {
  static constexpr int kBW = BW;  // weight rows per tile
  static constexpr int kBT = BT;  // tokens per tile
  static constexpr int kBlocks = 4;  // 128-byte K blocks per stage
  // Consumer warps per K block, each taking 1 / kRowGroups of the tile's m-tiles (more
  // warps keep more mma.sync in flight when the token tile is wide).
  static constexpr int kRowGroups = SFM_STREAM_ROW_GROUPS;
  static constexpr int kConsumers = kBlocks * kRowGroups;
  static constexpr int kThreads = 32 * (kConsumers + 1);  // + one producer warp
  static constexpr int kConsumerThreads = 32 * kConsumers;
  static constexpr int kStageK = 128 * kBlocks;
  static constexpr int kWBlockBytes = BW * 128;
  static constexpr int kXBlockBytes = BT * 128;
  static constexpr int kMI = BW / 16;
  static constexpr int kNI = BT / 8;
  static constexpr int kWarpMI = kMI / kRowGroups;  // m-tiles per consumer warp
  // One fp32 partial per accumulator per K block.
  static constexpr int kReduceBytes = kBlocks * kMI * kNI * 4 * 32 * 4;
  static constexpr int kMaxStages = 16;
  static constexpr int kBarrierBytes = 8 * (2 * kMaxStages + 1);
  // Every launch asks for the same shared memory (one CTA per SM), so occupancy and
  // cluster limits are properties of the kernel alone.
  static constexpr int kCtasPerSm = SFM_STREAM_CTAS_PER_SM;
  static constexpr int kSmemBytes = (kCtasPerSm == 1 ? 216 : 108) * 1024;
  static constexpr int kDataBytes = kSmemBytes - 1024 - kReduceBytes - kBarrierBytes;
  static constexpr int kMaxResidentX = SFM_STREAM_MAX_RESIDENT_X;
  // 64-row tiles: the consumers are two warpgroups, each multiplying two of a stage's four
  // K blocks with wgmma (m64 x BT tokens, operands straight from the ring). mma.sync FP8 on
  // sm_90 runs as FP8 -> FP16 conversions plus FP16 MMAs: with 32-token tiles wgmma took
  // GeGLU / SwiGLU M = 17..32 from 46 / 68 to 41 / 59 us (H200, benchmarks/RESULTS.md).
  static constexpr bool kWgmma = SFM_STREAM_WGMMA && BW == 64 && (BT == 16 || BT == 32);
  static_assert(BW % 16 == 0 && BT % 16 == 0, "whole MMA tiles, token tiles loaded in pairs");
  static_assert(kWarpMI >= 1 && kMI % kRowGroups == 0, "m-tiles split evenly over row groups");
  static_assert(kCtasPerSm > 1 || kDataBytes >= 3 * kBlocks * (kWBlockBytes + kXBlockBytes),
                "ring too shallow");
};

struct StreamParams {
  int m;
  int k;
  int n_out;     // output columns: H for the gated GEMM1, N otherwise
  int t_tiles;   // token tiles
  int tiles;     // t_tiles * weight tiles
  int k_stages;  // stages over the whole of K
  int stages;    // ring depth
  int x_resident;   // 1: x of the CTA's K range sits in shared memory after the ring
  int stage_bytes;  // w blocks, then x blocks unless x is resident
  int whole_stage_boxes;  // 1: 3-D tensor maps, one bulk copy per operand and stage
  void* out;
  EpilogueParams epi;
};

SFM_DEVICE uint32_t swizzled(int row, int chunk) {
  return static_cast<uint32_t>(row * 128 + (((chunk ^ row) & 7) << 4));
}

template <int THREADS>
SFM_DEVICE void consumer_barrier() {
  asm volatile("bar.sync 1, %0;\n" ::"n"(THREADS) : "memory");
}

template <EpilogueKind EPI>
constexpr int out_cols(int bw) {
  return EPI == EpilogueKind::kGatedToFp8 ? bw / 2 : bw;
}

template <typename Cfg, EpilogueKind EPI, Activation ACT>
__global__ void __launch_bounds__(Cfg::kThreads, 1)
    stream_gemm_kernel(const __grid_constant__ CUtensorMap tma_x,
                       const __grid_constant__ CUtensorMap tma_w, const StreamParams p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  constexpr bool kGated = EPI == EpilogueKind::kGatedToFp8;
  constexpr bool kGemm2 = EPI == EpilogueKind::kBiasToBf16;
  constexpr int kOutCols = out_cols<EPI>(Cfg::kBW);
  constexpr int kPairs = Cfg::kBT * kOutCols / 2;  // output column pairs per tile
  constexpr int kPairsPerThread = (kPairs + Cfg::kConsumerThreads - 1) / Cfg::kConsumerThreads;
  constexpr int kSums = kGated ? 2 : 1;  // gate and up, or the single accumulator
  static_assert(kPairs % Cfg::kConsumerThreads == 0 || kPairs < Cfg::kConsumerThreads,
                "whole pairs per consumer thread");

  extern __shared__ __align__(1024) uint8_t smem_raw[];
  uint8_t* ring = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) &
                                             ~uintptr_t(1023));
  const int stage_bytes = p.stage_bytes;
  uint8_t* x_smem = ring + p.stages * stage_bytes;  // resident x: [block][token][128 B]
  float* reduce = reinterpret_cast<float*>(ring + Cfg::kDataBytes);
  uint64_t* full = reinterpret_cast<uint64_t*>(reinterpret_cast<uint8_t*>(reduce) +
                                               Cfg::kReduceBytes);
  uint64_t* empty = full + Cfg::kMaxStages;
  uint64_t* x_full = empty + Cfg::kMaxStages;

  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;
  const int splits = gridDim.z;
  const int st_begin = static_cast<int>(int64_t(blockIdx.z) * p.k_stages / splits);
  const int st_end = static_cast<int>(int64_t(blockIdx.z + 1) * p.k_stages / splits);

  if (threadIdx.x == 0) {
    for (int s = 0; s < p.stages; ++s) {
      tma::mbar_init(&full[s], 1);
      tma::mbar_init(&empty[s], Cfg::kConsumers);
    }
    tma::mbar_init(x_full, 1);
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    tma::prefetch_tensormap(&tma_x);
    tma::prefetch_tensormap(&tma_w);
  }
  __syncthreads();
  if constexpr (!kGemm2) {
    // GEMM1 is a programmatic dependent launch too: its CTAs set up while the previous
    // kernel in the stream finishes (nothing above reads global memory), then wait for
    // it. Then GEMM2 may launch; its CTAs take over multiprocessors as ours finish (one
    // CTA per SM, all of ours resident) and prefetch their weights.
    pdl_wait();
    pdl_trigger();
  } else {
    // GEMM2 lets the next kernel launch now (its own wait still waits for this grid): the
    // next MLP's gated gate/up GEMM then loads its first weight stages while this one
    // finishes (wgmma_gemm, SFM_WGMMA_EARLY_GATED_TOKENS). Both together, SwiGLU M = 1 /
    // 8 / 16 -0.6 / -0.5 / -0.5 us (H200, scripts/mlp_ab.py, benchmarks/RESULTS.md,
    // twenty-third session).
    pdl_trigger();
  }

  // Tile t: token tile t % t_tiles of weight tile t / t_tiles (CTAs working at the same
  // time on one weight tile share it through L2).
  const int kblock = warp % Cfg::kBlocks;        // consumer warp: its K block of a stage
  const int mi0 = (warp / Cfg::kBlocks) * Cfg::kWarpMI;  // and its first m-tile
  if (warp == Cfg::kConsumers) {
    // ---------------- producer: one lane keeps the ring full ----------------
    // Stage layout: [half][block][row][128 B] weights (half: gate / up rows of the gated
    // GEMM1; [block][half][row][128 B] for wgmma, one 64-row operand per block), then
    // [block][token][128 B] activations unless x is resident.
    constexpr int kHalves = kGated ? 2 : 1;
    constexpr int kHalfRows = Cfg::kBW / kHalves;
    constexpr int kHalfBytes = Cfg::kBlocks * kHalfRows * 128;
    const int split_stages = st_end - st_begin;
    const int my_tiles = blockIdx.x < p.tiles ? (p.tiles - 1 - blockIdx.x) / gridDim.x + 1 : 0;
    const int iters = my_tiles * split_stages;
    // Ring slot `it`: stage st of the CTA's it / split_stages-th tile.
    auto k0_of = [&](int it) { return (st_begin + it % split_stages) * Cfg::kStageK; };
    auto tile_of = [&](int it) { return blockIdx.x + (it / split_stages) * gridDim.x; };
    auto issue_w = [&](int it) {  // also arms the slot's barrier for the stage's x bytes
      const int slot = it % p.stages;
      const int k0 = k0_of(it);
      const int c0 = (tile_of(it) / p.t_tiles) * kOutCols;
      uint8_t* stage = ring + slot * stage_bytes;
      if (p.whole_stage_boxes) {
        tma::mbar_expect_tx(&full[slot], stage_bytes);
        if constexpr (kGated && Cfg::kWgmma) {  // both halves in one 4-D box
          tma::tma_load_4d(stage, &tma_w, &full[slot], 0, c0, 0, k0 / 128);
        } else {
#pragma unroll
          for (int h = 0; h < kHalves; ++h) {
            tma::tma_load_3d(stage + h * kHalfBytes, &tma_w, &full[slot], 0, h * p.n_out + c0,
                             k0 / 128);
          }
        }
      } else {
        const int blocks = min(Cfg::kBlocks, (p.k - k0 + 127) / 128);
        tma::mbar_expect_tx(&full[slot],
                            blocks * (Cfg::kWBlockBytes + (p.x_resident ? 0 : Cfg::kXBlockBytes)));
        for (int b = 0; b < blocks; ++b) {
#pragma unroll
          for (int h = 0; h < kHalves; ++h) {
            const int at = Cfg::kWgmma ? (b * kHalves + h) * kHalfRows * 128
                                       : h * kHalfBytes + b * kHalfRows * 128;
            tma::tma_load_2d(stage + at, &tma_w, &full[slot], k0 + b * 128, h * p.n_out + c0);
          }
        }
      }
    };
    auto issue_x = [&](int it) {
      if (p.x_resident) return;
      const int slot = it % p.stages;
      const int k0 = k0_of(it);
      const int t0 = (tile_of(it) % p.t_tiles) * Cfg::kBT;
      uint8_t* xs = ring + slot * stage_bytes + Cfg::kBlocks * Cfg::kWBlockBytes;
      if (p.whole_stage_boxes) {
        tma::tma_load_3d(xs, &tma_x, &full[slot], 0, t0, k0 / 128);
      } else {
        const int blocks = min(Cfg::kBlocks, (p.k - k0 + 127) / 128);
        for (int b = 0; b < blocks; ++b) {
          tma::tma_load_2d(xs + b * Cfg::kXBlockBytes, &tma_x, &full[slot], k0 + b * 128, t0);
        }
      }
    };
    auto load_resident_x = [&]() {  // t_tiles == 1: every tile uses tokens [0, kBT)
      const int k_begin = st_begin * Cfg::kStageK;
      const int blocks = (min(p.k, st_end * Cfg::kStageK) - k_begin + 127) / 128;
      if (p.whole_stage_boxes) {
        // boxes of kBlocks blocks; a box past K is zero-filled and still counts its bytes
        const int boxes = (blocks + Cfg::kBlocks - 1) / Cfg::kBlocks;
        tma::mbar_expect_tx(x_full, boxes * Cfg::kBlocks * Cfg::kXBlockBytes);
        for (int b = 0; b < boxes; ++b) {
          tma::tma_load_3d(x_smem + b * Cfg::kBlocks * Cfg::kXBlockBytes, &tma_x, x_full, 0, 0,
                           k_begin / 128 + b * Cfg::kBlocks);
        }
      } else {
        tma::mbar_expect_tx(x_full, blocks * Cfg::kXBlockBytes);
        for (int b = 0; b < blocks; ++b) {
          tma::tma_load_2d(x_smem + b * Cfg::kXBlockBytes, &tma_x, x_full, k_begin + b * 128, 0);
        }
      }
    };
    if (lane == 0 && iters > 0) {
      // GEMM2 is launched as a programmatic dependent of GEMM1: it may start while GEMM1
      // still runs. Its weights do not depend on GEMM1, so fill the ring with them first;
      // only x (GEMM1's output) waits for GEMM1 to finish and flush.
      const int early = kGemm2 ? min(p.stages, iters) : 0;
      for (int it = 0; it < early; ++it) issue_w(it);
      if constexpr (kGemm2) pdl_wait();
      if (p.x_resident) load_resident_x();
      for (int it = 0; it < early; ++it) issue_x(it);
      for (int it = early; it < iters; ++it) {
        const int round = it / p.stages;
        if (round > 0) tma::mbar_wait(&empty[it % p.stages], (round - 1) & 1);
        issue_w(it);
        issue_x(it);
      }
    }
  } else {
    // ---------------- consumers ----------------
    const float x_scale = __ldg(p.epi.x_scale);
    const float inv_hidden =
        EPI == EpilogueKind::kBiasToBf16 ? 1.0f : inverse_hidden_scale(p.epi);
    if (p.x_resident) tma::mbar_wait(x_full, 0);
    int it = 0;
    for (int tile = blockIdx.x; tile < p.tiles; tile += gridDim.x) {
      const int c0 = (tile / p.t_tiles) * kOutCols;
      // This thread's epilogue columns: weight scales and bias loaded now, raw (nothing
      // uses them before the epilogue), so that their memory round trips overlap the
      // mainloop instead of following it. Clamped reads; the stores are masked.
      float col_w[kPairsPerThread][2][kSums];
      __nv_bfloat16 col_bias[kPairsPerThread][2];
#pragma unroll
      for (int i = 0; i < kPairsPerThread; ++i) {
        const int e = min(static_cast<int>(threadIdx.x) + i * Cfg::kConsumerThreads, kPairs - 1);
        const int g0 = c0 + (e % (kOutCols / 2)) * 2;
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          const int g = min(g0 + c, p.n_out - 1);
#pragma unroll
          for (int su = 0; su < kSums; ++su) {  // gated: up rows follow the gate rows
            col_w[i][c][su] = weight_scale(p.epi, static_cast<int64_t>(su) * p.n_out + g);
          }
          col_bias[i][c] = !kGated && p.epi.bias != nullptr ? p.epi.bias[g]
                                                             : __float2bfloat16(0.0f);
        }
      }
      if constexpr (Cfg::kWgmma) {
        // Warpgroup wg multiplies K blocks 2 wg and 2 wg + 1 of every stage, each into its
        // own `part`, and adds both to the fp32 totals once per stage: the tensor cores' FP8
        // accumulation is narrower than fp32, and 128 K per promotion keeps the contract's
        // error bound with margin (256 put a GeGLU-sized M = 1 case at 1.05e-2).
        const int wg = warp / 4;
        float acc[Cfg::kBT / 2], part[2][Cfg::kBT / 2];
#pragma unroll
        for (int i = 0; i < Cfg::kBT / 2; ++i) acc[i] = 0.0f;
        for (int st = st_begin; st < st_end; ++st, ++it) {
          const int slot = it % p.stages;
          tma::mbar_wait(&full[slot], (it / p.stages) & 1);
          const uint8_t* stage = ring + slot * stage_bytes;
          // K tail: whether each of the warpgroup's blocks exists (warpgroup-uniform)
          const bool has[2] = {st * Cfg::kStageK + wg * 256 < p.k,
                               st * Cfg::kStageK + wg * 256 + 128 < p.k};
          wgmma_gemm::wgmma_fence();
#pragma unroll
          for (int bb = 0; bb < 2; ++bb) {
            const int blk = wg * 2 + bb;
            if (has[bb]) {
              const uint8_t* xb =
                  p.x_resident
                      ? x_smem + ((st - st_begin) * Cfg::kBlocks + blk) * Cfg::kXBlockBytes
                      : stage + Cfg::kBlocks * Cfg::kWBlockBytes + blk * Cfg::kXBlockBytes;
              const uint64_t da = wgmma_gemm::smem_desc(stage + blk * Cfg::kWBlockBytes);
              const uint64_t db = wgmma_gemm::smem_desc(xb);
#pragma unroll
              for (int kk = 0; kk < 4; ++kk) {  // +32 bytes of K = +2 in the address field
                wgmma_gemm::wgmma_m64nk32<Cfg::kBT>(part[bb], da + 2 * kk, db + 2 * kk,
                                                    kk > 0 ? 1 : 0);
              }
            }
          }
          wgmma_gemm::wgmma_commit();
          wgmma_gemm::wgmma_wait<0>();
#pragma unroll
          for (int bb = 0; bb < 2; ++bb) {
            if (has[bb]) {
#pragma unroll
              for (int i = 0; i < Cfg::kBT / 2; ++i) acc[i] += part[bb][i];
            }
          }
          __syncwarp();
          if (lane == 0) tma::mbar_arrive(&empty[slot]);
        }
        // reduce[wg][row][token]; accumulator i of a thread: row 16 (warp % 4) + lane / 4
        // (+ 8 for i % 4 >= 2), token 8 (i / 4) + 2 (lane % 4) + i % 2.
        float* red = reduce + wg * Cfg::kBW * Cfg::kBT;
#pragma unroll
        for (int i = 0; i < Cfg::kBT / 2; ++i) {
          const int row = 16 * (warp % 4) + lane / 4 + 8 * ((i % 4) / 2);
          const int tok = 8 * (i / 4) + 2 * (lane % 4) + i % 2;
          red[row * Cfg::kBT + tok] = acc[i];
        }
      } else {
        float acc[Cfg::kWarpMI][Cfg::kNI][4];  // m-tiles mi0 .. mi0 + kWarpMI - 1
        mma_gemm::zero_fragments(acc);

        for (int st = st_begin; st < st_end; ++st, ++it) {
          const int slot = it % p.stages;
          tma::mbar_wait(&full[slot], (it / p.stages) & 1);
          const int kb = st * Cfg::kStageK + kblock * 128;
          if (kb < p.k) {  // this warp's block exists (K tail)
            constexpr int kHalfRows = kGated ? Cfg::kBW / 2 : Cfg::kBW;
            const uint8_t* stage = ring + slot * stage_bytes;
            const uint8_t* wb = stage + kblock * kHalfRows * 128;  // gate (or only) rows
            const uint8_t* xb =
                p.x_resident
                    ? x_smem + ((st - st_begin) * Cfg::kBlocks + kblock) * Cfg::kXBlockBytes
                    : stage + Cfg::kBlocks * Cfg::kWBlockBytes + kblock * Cfg::kXBlockBytes;
#pragma unroll
            for (int ks = 0; ks < 4; ++ks) {  // 32 bytes of K per mma
              uint32_t a[Cfg::kWarpMI][4];
#pragma unroll
              for (int mi = 0; mi < Cfg::kWarpMI; ++mi) {
                // m-tile gm: rows [16 gm, 16 gm + 16) of the tile; up rows live in the
                // second half of the stage
                constexpr int kHalfMI = kHalfRows / 16;
                const int gm = mi0 + mi;
                const uint8_t* half = wb + (gm / kHalfMI) * (Cfg::kBlocks * kHalfRows * 128);
                const int row = (gm % kHalfMI) * 16 + (lane & 15);
                mma_gemm::ldmatrix_x4(tma::smem_u32(half + swizzled(row, ks * 2 + (lane >> 4))),
                                      a[mi][0], a[mi][1], a[mi][2], a[mi][3]);
              }
              uint32_t b[Cfg::kNI][2];
#pragma unroll
              for (int ni = 0; ni < Cfg::kNI; ni += 2) {
                const int row = ni * 8 + (lane & 7) + ((lane >> 4) << 3);
                mma_gemm::ldmatrix_x4(
                    tma::smem_u32(xb + swizzled(row, ks * 2 + ((lane >> 3) & 1))), b[ni][0],
                    b[ni][1], b[ni + 1][0], b[ni + 1][1]);
              }
#pragma unroll
              for (int mi = 0; mi < Cfg::kWarpMI; ++mi)
#pragma unroll
                for (int ni = 0; ni < Cfg::kNI; ++ni)
                  mma_gemm::mma_fp8(acc[mi][ni], a[mi], b[ni][0], b[ni][1]);
            }
          }
          __syncwarp();
          if (lane == 0) tma::mbar_arrive(&empty[slot]);
        }

        // ---- the warps' partial sums meet: reduce[k block][m-tile][ni][r][lane] ----
#pragma unroll
        for (int mi = 0; mi < Cfg::kWarpMI; ++mi)
#pragma unroll
          for (int ni = 0; ni < Cfg::kNI; ++ni)
#pragma unroll
            for (int r = 0; r < 4; ++r)
              reduce[(((kblock * Cfg::kMI + mi0 + mi) * Cfg::kNI + ni) * 4 + r) * 32 + lane] =
                  acc[mi][ni][r];
      }
      consumer_barrier<Cfg::kConsumerThreads>();

      // Each consumer thread owns kPairsPerThread pairs of adjacent output columns of
      // one token; sum[i][c][s]: pair i, column c of the pair, gate/up (or single) sum s.
      float sum[kPairsPerThread][2][kSums];
#pragma unroll
      for (int i = 0; i < kPairsPerThread; ++i) {
        const int e = min(static_cast<int>(threadIdx.x) + i * Cfg::kConsumerThreads,
                          kPairs - 1);  // threads past the tile's pairs store nothing
        const int tok = e / (kOutCols / 2);
        const int col0 = (e % (kOutCols / 2)) * 2;
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          const int col = col0 + c;
#pragma unroll
          for (int s = 0; s < kSums; ++s) {
            const int wrow = s * kOutCols + col;  // gated: up rows follow the gate rows
            const int mi = wrow / 16, row = wrow % 16;
            const int ni = tok / 8, tk = tok % 8;
            const int frag_lane = (row % 8) * 4 + tk / 2;
            const int r = (row / 8) * 2 + (tk % 2);
            float v = 0.0f;
            if constexpr (Cfg::kWgmma) {
              v = reduce[wrow * Cfg::kBT + tok] + reduce[(Cfg::kBW + wrow) * Cfg::kBT + tok];
            } else {
#pragma unroll
              for (int kbl = 0; kbl < Cfg::kBlocks; ++kbl)
                v += reduce[(((kbl * Cfg::kMI + mi) * Cfg::kNI + ni) * 4 + r) * 32 + frag_lane];
            }
            sum[i][c][s] = v;
          }
        }
      }
      consumer_barrier<Cfg::kConsumerThreads>();  // reduce[] is free for the next tile

      const int t0 = (tile % p.t_tiles) * Cfg::kBT;
      if (splits > 1) {
        // Cluster split-K: park this CTA's sums, rank 0 adds the peers' (one tile per CTA
        // in this mode, so the whole CTA, producer included, meets at the cluster sync).
        float* mine = reduce + threadIdx.x * kPairsPerThread * 2 * kSums;
#pragma unroll
        for (int i = 0; i < kPairsPerThread; ++i)
#pragma unroll
          for (int c = 0; c < 2; ++c)
#pragma unroll
            for (int s = 0; s < kSums; ++s) mine[(i * 2 + c) * kSums + s] = sum[i][c][s];
        cooperative_groups::cluster_group cluster = cooperative_groups::this_cluster();
        cluster.sync();
        const bool leader = cluster.block_rank() == 0;
        if (leader) {
          for (int peer = 1; peer < splits; ++peer) {
            const float* theirs = cluster.map_shared_rank(mine, peer);
#pragma unroll
            for (int i = 0; i < kPairsPerThread; ++i)
#pragma unroll
              for (int c = 0; c < 2; ++c)
#pragma unroll
                for (int s = 0; s < kSums; ++s) sum[i][c][s] += theirs[(i * 2 + c) * kSums + s];
          }
        }
        cluster.sync();  // peers' shared memory must outlive the leader's reads
        if (!leader) return;
      }

      // ---- fused epilogue: one 2-byte (FP8) or 4-byte (bf16) store per pair ----
#pragma unroll
      for (int i = 0; i < kPairsPerThread; ++i) {
        const int e = threadIdx.x + i * Cfg::kConsumerThreads;
        const int t = t0 + e / (kOutCols / 2);
        const int g0 = c0 + (e % (kOutCols / 2)) * 2;
        if (e >= kPairs || t >= p.m || g0 >= p.n_out) continue;
        float v[2];
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          if constexpr (EPI == EpilogueKind::kGatedToFp8) {
            const float gate = sum[i][c][0] * (x_scale * col_w[i][c][0]);
            const float up = sum[i][c][kSums - 1] * (x_scale * col_w[i][c][kSums - 1]);
            v[c] = activate<ACT>(gate) * up * inv_hidden;
          } else {
            const float y =
                sum[i][c][0] * (x_scale * col_w[i][c][0]) + __bfloat162float(col_bias[i][c]);
            v[c] = EPI == EpilogueKind::kBiasGeluToFp8 ? gelu_tanh(y) * inv_hidden : y;
          }
        }
        const int64_t at = static_cast<int64_t>(t) * p.n_out + g0;
        const bool both = g0 + 1 < p.n_out;
        if constexpr (EPI == EpilogueKind::kBiasToBf16) {
          __nv_bfloat16* out = static_cast<__nv_bfloat16*>(p.out) + at;
          if (both) {
            *reinterpret_cast<__nv_bfloat162*>(out) = __floats2bfloat162_rn(v[0], v[1]);
          } else {
            *out = __float2bfloat16_rn(v[0]);
          }
        } else {
          uint8_t* out = static_cast<uint8_t*>(p.out) + at;
          if (both) {
            *reinterpret_cast<uint16_t*>(out) =
                static_cast<uint16_t>(q_one(v[0]) | (q_one(v[1]) << 8));
          } else {
            *out = q_one(v[0]);
          }
        }
      }
    }
  }
  if (splits > 1 && warp == Cfg::kConsumers) {
    // The producer's half of the two cluster barriers the consumers pass above.
    cooperative_groups::cluster_group cluster = cooperative_groups::this_cluster();
    cluster.sync();
    cluster.sync();
  }
#endif
}

// How a problem maps onto the GPU for one tile shape.
struct Plan {
  int64_t tiles;
  int splits;        // cluster split-K factor (one tile per CTA when > 1)
  int64_t grid;      // CTAs along x
  bool x_resident;
  int stage_bytes;
  int stages;
  double cost;       // bytes a CTA on the critical path moves through shared memory
};

template <typename Cfg, EpilogueKind EPI, Activation ACT>
Plan make_plan(int64_t m, int64_t k, int64_t n_out, int dev) {
  constexpr auto kernel = stream_gemm_kernel<Cfg, EPI, ACT>;
  const int64_t sms = sm_count(dev) * Cfg::kCtasPerSm;  // CTA slots
  const int64_t t_tiles = host_ceil_div(m, Cfg::kBT);
  const int64_t k_stages = host_ceil_div(k, Cfg::kStageK);
  Plan plan;
  plan.tiles = t_tiles * host_ceil_div(n_out, out_cols<EPI>(Cfg::kBW));
  // Split K over a cluster only while all clusters fit on the GPU at once and every
  // split keeps at least 2 stages.
  plan.splits = 1;
  while (plan.splits < 8 && plan.tiles * plan.splits * 2 <= sms &&
         k_stages / (2 * plan.splits) >= 2 &&
         plan.tiles <= max_active_clusters<kernel>(dev, plan.splits * 2, Cfg::kThreads,
                                                   Cfg::kSmemBytes,
                                                   sm_count(dev) / (plan.splits * 2) / 2)) {
    plan.splits *= 2;
  }
  plan.grid = plan.splits > 1 ? plan.tiles : std::min(plan.tiles, sms);
  const int64_t split_stages = host_ceil_div(k_stages, plan.splits);
  const int64_t x_bytes = split_stages * Cfg::kBlocks * Cfg::kXBlockBytes;
  plan.x_resident = t_tiles == 1 && x_bytes <= Cfg::kMaxResidentX &&
                    Cfg::kDataBytes - x_bytes >= 2 * Cfg::kBlocks * Cfg::kWBlockBytes;
  plan.stage_bytes = Cfg::kBlocks * (Cfg::kWBlockBytes + (plan.x_resident ? 0 : Cfg::kXBlockBytes));
  const int64_t ring = Cfg::kDataBytes - (plan.x_resident ? x_bytes : 0);
  plan.stages = static_cast<int>(std::min<int64_t>(Cfg::kMaxStages, ring / plan.stage_bytes));
  // Each tile also costs a fixed epilogue (partial-sum exchange, two barriers, stores),
  // worth about kTileOverheadBytes of streaming (fitted to H200 measurements: 64-row
  // tiles beat 16- and 32-row ones even where they leave multiprocessors idle).
  constexpr double kTileOverheadBytes = 48 * 1024;
  const int64_t tiles_per_cta = host_ceil_div(plan.tiles, plan.grid);
  if (plan.stages < 2) {  // this tile shape does not fit the ring: never pick it
    plan.cost = 1e300;
    return plan;
  }
  plan.cost = static_cast<double>(tiles_per_cta) *
              (static_cast<double>(k / plan.splits) * plan.stage_bytes / Cfg::kStageK +
               kTileOverheadBytes);
  return plan;
}

template <typename Cfg, EpilogueKind EPI, Activation ACT>
cudaError_t launch_plan(const Plan& plan, const uint8_t* x, const uint8_t* w, int64_t m,
                        int64_t k, int64_t n_out, void* out, const EpilogueParams& epi,
                        cudaStream_t stream) {
  constexpr bool kGated = EPI == EpilogueKind::kGatedToFp8;
  constexpr auto kernel = stream_gemm_kernel<Cfg, EPI, ACT>;
  const int64_t w_rows = kGated ? 2 * n_out : n_out;
  const int box_w = kGated ? Cfg::kBW / 2 : Cfg::kBW;
  CUtensorMap tma_x{}, tma_w{};
  // Whole-stage boxes where the driver accepts the 3-D block view (k % 128 == 0), else one
  // box per 128-byte block. Resident x is loaded in boxes of kBlocks blocks as well.
  const auto make_w_blocks = [&] {
    return kGated && Cfg::kWgmma
               ? tma::make_tma_gated_blocks(&tma_w, w, n_out, k, box_w, Cfg::kBlocks)
               : tma::make_tma_blocks(&tma_w, w, w_rows, k, box_w, Cfg::kBlocks);
  };
  bool whole = SFM_STREAM_WHOLE_STAGE_BOXES && make_w_blocks() == cudaSuccess &&
               tma::make_tma_blocks(&tma_x, x, m, k, Cfg::kBT, Cfg::kBlocks) == cudaSuccess;
  cudaError_t e = cudaSuccess;
  if (!whole) {
    e = tma::make_tma(&tma_x, x, m, k, Cfg::kBT, 128);
    if (e != cudaSuccess) return e;
    e = tma::make_tma(&tma_w, w, w_rows, k, box_w, 128);
    if (e != cudaSuccess) return e;
  }
  e = allow_dynamic_smem<kernel>(Cfg::kSmemBytes);
  if (e != cudaSuccess) return e;
  if (plan.tiles > 0x7fffffff) return cudaErrorInvalidConfiguration;

  StreamParams p;
  p.m = static_cast<int>(m);
  p.k = static_cast<int>(k);
  p.n_out = static_cast<int>(n_out);
  p.t_tiles = static_cast<int>(host_ceil_div(m, Cfg::kBT));
  p.tiles = static_cast<int>(plan.tiles);
  p.k_stages = static_cast<int>(host_ceil_div(k, Cfg::kStageK));
  p.stages = plan.stages;
  p.x_resident = plan.x_resident ? 1 : 0;
  p.stage_bytes = plan.stage_bytes;
  p.whole_stage_boxes = whole ? 1 : 0;
  p.out = out;
  p.epi = epi;

  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(static_cast<unsigned>(plan.grid), 1, static_cast<unsigned>(plan.splits));
  config.blockDim = dim3(Cfg::kThreads, 1, 1);
  config.dynamicSmemBytes = Cfg::kSmemBytes;
  config.stream = stream;
  cudaLaunchAttribute attr[2];
  int n_attr = 0;
  if (plan.splits > 1) {
    attr[n_attr].id = cudaLaunchAttributeClusterDimension;
    attr[n_attr].val.clusterDim.x = 1;
    attr[n_attr].val.clusterDim.y = 1;
    attr[n_attr].val.clusterDim.z = static_cast<unsigned>(plan.splits);
    ++n_attr;
  }
  if (SFM_STREAM_PDL) {
    // Programmatic dependent launch: may overlap the end of the previous kernel in the
    // stream; GEMM2 (after GEMM1) waits (griddepcontrol.wait) before reading x, GEMM1
    // before reading anything.
    attr[n_attr].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[n_attr].val.programmaticStreamSerializationAllowed = 1;
    ++n_attr;
  }
  config.attrs = attr;
  config.numAttrs = n_attr;
  return cudaLaunchKernelEx(&config, kernel, tma_x, tma_w, p);
}

// Launches the cheapest of the tile widths BWS (weight rows per tile) for this problem:
// the fewest bytes through shared memory on the busiest CTA, ties to the wider tile.
template <int BT, EpilogueKind EPI, Activation ACT, int... BWS>
cudaError_t launch(const uint8_t* x, const uint8_t* w, int64_t m, int64_t k, int64_t n_out,
                   void* out, const EpilogueParams& epi, cudaStream_t stream) {
  if (m == 0 || n_out == 0) return cudaSuccess;
  int dev = 0;
  cudaError_t e = cudaGetDevice(&dev);
  if (e != cudaSuccess) return e;
  const Plan plans[] = {make_plan<StreamConfig<BWS, BT>, EPI, ACT>(m, k, n_out, dev)...};
  constexpr int kWidths[] = {BWS...};
  int best = 0;
  for (int i = 1; i < static_cast<int>(sizeof...(BWS)); ++i) {
    const bool cheaper = plans[i].cost < plans[best].cost * 0.999;
    const bool tie_wider = plans[i].cost <= plans[best].cost * 1.001 && kWidths[i] > kWidths[best];
    if (cheaper || tie_wider) best = i;
  }
  int i = 0;
  ((i++ == best ? (e = launch_plan<StreamConfig<BWS, BT>, EPI, ACT>(plans[best], x, w, m, k, n_out,
                                                                      out, epi, stream),
                   true)
                : false) ||
   ...);
  return e;
}

}  // namespace stream_gemm
}  // namespace
}  // namespace static_fp8_mlp
