// Swap-AB Hopper FP8 GEMMs for mid-sized batches (auto: M = 1..512, see auto_takes),
// modelled on what cuBLAS runs there (benchmarks/RESULTS.md, thirteenth session: nvjet
// kernels with the tokens on the N side, sized to M in steps of 8).
//
// The weights are the wgmma A operand (128 rows per CTA, 64 per consumer warpgroup) and
// the tokens the N operand, all of M in one tile rounded up to 16 (up to 192; beyond,
// even tiles), so one pass over the weights computes every token without 64- or
// 128-token padding. Same pipeline as fp8_gemm_wgmma.cuh: one producer thread issuing
// TMA into a multi-stage ring, two consumer warpgroups, fp32 promotion every
// SwapPlan::kPromoteTiles K tiles (1 for token tiles up to 64, else 2).
//
// Gate/up GEMMs: persistent CTAs; each tile's epilogue overlaps the next tile's first
// wgmma group. The gated A tile is loaded by one 4-D TMA box as 8 groups of (8 gate rows,
// the same 8 units' up rows), so in a warp's 16-row slice of the m64 operand, accumulator
// rows r and r + 8 of a thread are gate and up of one hidden unit: the SwiGLU/GeGLU
// epilogue stays in registers. The accumulators are [weight row][token]; the epilogue
// writes them transposed into a [token][column] staging tile, then stores rows of it.
//
// Down GEMM: N = 2048-4096 makes only 16-32 tiles of 128 rows, so K is split over
// gridDim.y CTAs per tile, each writing raw fp32 partial sums to a workspace for a reduce
// kernel, or (down_in_clusters) the splits of a tile are one cluster and reduce over
// distributed shared memory; a programmatic dependent launch that prefetches its first
// weight stages before waiting for the hidden state and, where its weights stream from
// DRAM, lets the next kernel launch as it starts (triggers_next): the next MLP's gated
// gate/up GEMM at one token tile then loads its own first weight stages early.
#pragma once

#include "fp8_gemm_wgmma.cuh"
#include "phase_trace.cuh"

#include <type_traits>

namespace static_fp8_mlp {
namespace {
namespace swap_gemm {

using namespace tma;
using wgmma_gemm::kBK;
using wgmma_gemm::kConsumers;
using wgmma_gemm::kMaxDynamicSmem;
using wgmma_gemm::kThreads;
using wgmma_gemm::smem_desc;
using wgmma_gemm::warpgroup_barrier;
using wgmma_gemm::WgmmaParams;

// K tiles (of 128) accumulated by wgmma before the fp32 promotion. Token tiles up to 64
// (M <= 64, where the weights' bytes bound the time) promote every K tile, as the wide
// wgmma shape does: at 2, GeGLU-sized gated MLPs at M = 1 (K = 2048 or 1152, H =
// 8464-16384) read relative errors of 1.05e-2 and 1.14e-2 against the contract's 1e-2
// once this kernel took them (sixteenth session, test_tensor_core_split_k_down_gemm and
// test_auto_paths_at_mid_m).
#ifndef SFM_SWAP_PROMOTE_TILES
#define SFM_SWAP_PROMOTE_TILES 2
#endif
#ifndef SFM_SWAP_SMALL_PROMOTE_TILES
#define SFM_SWAP_SMALL_PROMOTE_TILES 1
#endif
// Token tiles up to this many tokens keep one promotion group in flight while the next is
// issued (two partial accumulators, wgmma.wait_group 1): the group's wgmma latency then
// hides under the wait for the next stage instead of adding to it. The partial sums are
// added in the same order: outputs are bit-identical. The consumers then hold two
// groups' stages at once: the ring must have room for both. 0: off. Only the 8-stage
// (not DEEP) kernels, the dense up GEMM and the down GEMM over a workspace, take it:
// there it was faster at every dense MLP point from 50 tokens (-0.15 to -0.37 us), while
// the deep-ring gated gate/up and clustered down GEMMs were even up to 64 tokens and
// slower at 96-128 (GeGLU +0.7 / +1.4 us, SwiGLU M = 128 +3.8 us; thirtieth session).
#ifndef SFM_SWAP_PIPELINED_PROMOTE_TOKENS
#define SFM_SWAP_PIPELINED_PROMOTE_TOKENS 128
#endif
// Token tiles up to this many tokens give each of a K tile's four k32 wgmmas its own
// partial accumulator (a fresh sum, no chaining inside the tensor core), promoted into
// fp32 together: wgmma's FP8 accumulation keeps fewer mantissa bits than fp32, and part
// of the error against the fp32 reference at small M comes from the chain of four.
// SFM_SWAP_FINE_PROMOTE_DEEP_ONLY 1: only in the deep-ring kernels (the gated gate/up
// GEMM, the down GEMM reduced in clusters), not the dense up GEMM (+0.37 us at 1152x4304
// M = 16 in the thirty-eighth session's call 24). H100, call 25 of the thirty-ninth
// session (scripts/path_error_probe.py, 80 draws; scripts/mlp_ab.py, 7 rounds;
// benchmarks/RESULTS.md): GeGLU 2048x16384 M = 1 mean relative error 3.98e-3 -> 2.75e-3,
// worst 9.38e-3 -> 6.40e-3 (the contract's bound is 1e-2), SwiGLU M = 1-16 mean
// 3.8-4.2e-3 -> 2.8-3.1e-3; 42 of 42 whole-MLP points even in speed. 0: off.
#ifndef SFM_SWAP_FINE_PROMOTE_TOKENS
#define SFM_SWAP_FINE_PROMOTE_TOKENS 16
#endif
#ifndef SFM_SWAP_FINE_PROMOTE_DEEP_ONLY
#define SFM_SWAP_FINE_PROMOTE_DEEP_ONLY 1
#endif
// Experiment 7 (thirty-seventh session; call 17: 0.2-0.66 us slower at M = 32-64, not
// kept): token tiles up to this many tokens in the 8-stage kernels, where fine promotion
// does not apply, deal each K tile's k32 wgmmas over two accumulators (two dependent
// chains of 2 instead of one of 4). 0: off.
#ifndef SFM_SWAP_DUAL_CHAIN_TOKENS
#define SFM_SWAP_DUAL_CHAIN_TOKENS 0
#endif
// Gated gate/up GEMMs up to this many tokens (one token tile) load their first weight
// stages before they wait for the previous kernel (see the kernel); 0: never.
#ifndef SFM_SWAP_EARLY_GATED_TOKENS
#define SFM_SWAP_EARLY_GATED_TOKENS 64
#endif
#ifndef SFM_SWAP_DEEP_STAGES  // the deep rings' stages at most (see SwapPlan)
#define SFM_SWAP_DEEP_STAGES 12
#endif
#ifndef SFM_SWAP_EARLY_GATED_STAGES_WIDE  // SwapPlan::kEarlyGatedStages from 40 tokens
#define SFM_SWAP_EARLY_GATED_STAGES_WIDE 8
#endif
constexpr int kMaxEarlyGatedStagesWide = SFM_SWAP_EARLY_GATED_STAGES_WIDE;
constexpr int kMinSmallTokens = 1;  // auto: GeGLU-sized GEMMs from here (auto_takes)
constexpr int kMinTokens = 65;       // auto: the others from here
constexpr int64_t kMinClusterDownTokens = 40;  // the down GEMM's splits in clusters from here
#ifndef SFM_SWAP_MIN_L2_TOKENS  // auto: L2-resident GEMMs (not gate/up) from here to 64
#define SFM_SWAP_MIN_L2_TOKENS 33
#endif
#ifndef SFM_SWAP_MIN_L2_EARLY_TOKENS  // ... and a dense MLP's (L2-resident) up GEMM,
#define SFM_SWAP_MIN_L2_EARLY_TOKENS 8  // and a narrow down GEMM, K unaligned, from here
#endif
#ifndef SFM_SWAP_MAX_L2_EARLY_UP_K  // ... the up GEMM only up to this K (l2_mid_takes)
#define SFM_SWAP_MAX_L2_EARLY_UP_K 1152
#endif
#ifndef SFM_SWAP_MIN_L2_SMALL_TOKENS  // ... and every L2-resident GEMM but a gated gate/up
#define SFM_SWAP_MIN_L2_SMALL_TOKENS 9    // one from here to kMaxL2SmallTokens (9: never;
#endif                                    // off for precision: see l2_mid_takes)
constexpr int kMinL2Tokens = SFM_SWAP_MIN_L2_TOKENS;
constexpr int kMinL2SmallTokens = SFM_SWAP_MIN_L2_SMALL_TOKENS;
constexpr int kMaxL2SmallTokens = 8;  // below the register-sourced kernel's 9 (hopper::rs_preferred)
#ifndef SFM_SWAP_MIN_L2_GATED_TOKENS  // a gated MLP's L2-resident GEMMs from here to 64
#define SFM_SWAP_MIN_L2_GATED_TOKENS 9    // (l2_gated_takes; 9: where the warp kernel stops)
#endif
constexpr int kMinL2GatedTokens = SFM_SWAP_MIN_L2_GATED_TOKENS;
#ifndef SFM_SWAP_MAX_L2_GATED_UP_TOKENS  // ... and its gate/up GEMM up to here
#define SFM_SWAP_MAX_L2_GATED_UP_TOKENS 128  // (64: as the down GEMM; l2_gated_takes)
#endif
constexpr int kMaxL2GatedUpTokens = SFM_SWAP_MAX_L2_GATED_UP_TOKENS;
constexpr int kMinL2EarlyTokens = SFM_SWAP_MIN_L2_EARLY_TOKENS;
constexpr int64_t kMaxL2EarlyUpK = SFM_SWAP_MAX_L2_EARLY_UP_K;
constexpr int kMaxTokens = 192;  // two accumulator sets of BT / 2 registers per thread
constexpr int kMaxAutoTokens = 384;  // auto gate/up GEMMs: up to two token tiles
constexpr int kMaxAutoTokensShortK = 512;  // ... with K <= 2048 (GeGLU-sized): three

// 128 weight rows per CTA, 64 per consumer warpgroup, each warpgroup multiplying all BT
// tokens (wgmma N = BT): wide N keeps the tensor cores efficient (a first draft of the
// down GEMM with 64 rows shared by both warpgroups, each taking half of the tokens, ran
// its wgmmas at N = 32-40 and was tensor-issue bound: 36.9 us under ncu at SwiGLU
// M = 100 on H200, where cuBLAS's down GEMM takes about 21). Gate/up GEMMs write the FP8
// hidden through a staging tile. The down GEMM splits K over gridDim.y CTAs per weight
// tile instead (N = 2048-4096 is only 16-32 tiles of 128 rows) and writes raw fp32
// partial sums to a workspace [split][m][n], reduced with the scales and bias by
// wgmma_gemm::split_k_reduce_kernel, or stages them in its ring for a cluster reduction
// (wgmma_gemm::split_cluster_reduce).
// DEEP: a ring of up to SFM_SWAP_DEEP_STAGES (12) stages instead of 8, as far as shared
// memory allows (small token tiles: 12 stages at 8-16 tokens, 9 at 56), for the gated
// gate/up GEMM and the down GEMM reduced in clusters. These stream from DRAM on few
// CTAs per tile or with their weight loads started before the wait, where more bytes in
// flight per CTA help: whole MLPs against 8 stages (scripts/mlp_ab.py, H200,
// benchmarks/RESULTS.md, twenty-fifth session) GeGLU M = 8 / 16 / 32 -0.9 / -1.1 / -0.7
// us (both GEMMs contributing: gate/up alone -0.6 to -0.8, down alone -0.3), M = 1 and
// 40-128 within -0.2 to +0.03; SwiGLU and the dense MLPs within run-to-run noise (-0.9 to
// +0.4 and -0.05 to +0.1). Not for the down GEMM over a workspace (128 CTAs for SwiGLU's
// N = 4096 below 40 tokens: 12 stages there made SwiGLU M = 1-32 1.2-2.0 us slower) nor
// the dense up GEMM (L2-resident).
template <EpilogueKind EPI, int BT, bool DEEP = false>
struct SwapPlan {
  static constexpr bool kGated = EPI == EpilogueKind::kGatedToFp8;
  static constexpr bool kSplitK = EPI == EpilogueKind::kBiasToBf16;
  static_assert(BT % (BT < 64 ? 8 : 16) == 0 && BT >= 8 && BT <= kMaxTokens, "token tile");
  static constexpr int kRows = 64 * kConsumers;               // weight rows per CTA
  static constexpr int kOutCols = kGated ? kRows / 2 : kRows;  // output columns per CTA
  static constexpr int kPromoteTiles = BT <= 64 ? SFM_SWAP_SMALL_PROMOTE_TILES : SFM_SWAP_PROMOTE_TILES;
  // Partial accumulators per promotion group, the k32 wgmmas of a K tile dealt round
  // them: one per k32 wgmma (fine promotion), two (experiment 7), or one chain of four.
  static constexpr bool kFine = BT <= SFM_SWAP_FINE_PROMOTE_TOKENS && kPromoteTiles == 1 &&
                                (DEEP || !SFM_SWAP_FINE_PROMOTE_DEEP_ONLY);
  static constexpr int kParts = kFine ? kBK / 32 : !DEEP && BT <= SFM_SWAP_DUAL_CHAIN_TOKENS ? 2 : 1;
  static constexpr int kPitch = kOutCols + 16;  // FP8 staging row, + 16: banks
  static constexpr int kTileABytes = kRows * kBK;
  static constexpr int kTileBBytes = BT * kBK;
  static constexpr int kStageBytes = kTileABytes + kTileBBytes;
  static constexpr int kStagingBytes = kSplitK ? 0 : BT * kPitch;
  // The down GEMM's cluster reduction stages its fp32 partial tile [BT][kRows] in the
  // (then idle) ring; + 16 bytes per row: conflict-free writes from the accumulators.
  static constexpr int kPartialPitch = kRows * 4 + 16;
  static constexpr int kMaxStages = DEEP ? SFM_SWAP_DEEP_STAGES : 8;
  static constexpr int kBarrierBytes = 2 * kMaxStages * 8;
  static constexpr int kStages =
      std::min(kMaxStages, (kMaxDynamicSmem - 1024 - kStagingBytes - kBarrierBytes) / kStageBytes);
  static constexpr int kRingBytes = kStages * kStageBytes;
  static constexpr int kSmemBytes = kRingBytes + kStagingBytes + kBarrierBytes + 1024;
  // Weight stages a gated gate/up GEMM loads before its wait (see the kernel): all of
  // the ring up to 32 tokens, at most kMaxEarlyGatedStagesWide from 40. At 40-64 tokens
  // (rings of 9-10 stages) 8 were 0.4-0.6 us faster per GeGLU MLP than the whole ring
  // (M = 33, 41, 48, 50, 56, 57, 64: -0.42 / -0.51 / -0.40 / -0.58 / -0.57 / -0.49 /
  // -0.46 us; SwiGLU M = 41-64 within its noise, +0.19 to -0.95; 6 stages: GeGLU -0.3 to
  // -0.7, SwiGLU +0.04 to +0.56, and at M = 1-32 +0.1 to +1.5 for both (9 rounds; 8 not
  // measured there); 4: GeGLU +0.2 to -0.4; scripts/mlp_ab.py, 15 rounds, H200,
  // twenty-sixth session). Fewer weight boxes queued ahead of the stage's tokens, which
  // are issued after the wait, is the likely reason.
  static constexpr int kEarlyGatedStages =
      BT >= 40 ? std::min(kStages, kMaxEarlyGatedStagesWide) : kStages;
  static_assert(kStages >= 3, "shared memory too small for the ring");
  static_assert(kStageBytes % 1024 == 0, "stages keep the 1024-byte swizzle alignment");
  static_assert(!kSplitK || BT * kPartialPitch <= kRingBytes, "the partial tile fits the ring");
};

template <EpilogueKind EPI, Activation ACT, int BT, bool DEEP>
__global__ void __launch_bounds__(kThreads, 1)
    fp8_gemm_swap_kernel(const __grid_constant__ CUtensorMap tma_x,
                         const __grid_constant__ CUtensorMap tma_w, const WgmmaParams p) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using P = SwapPlan<EPI, BT, DEEP>;
  constexpr int kStages = P::kStages;
  constexpr bool kGated = P::kGated;
  constexpr bool kDown = P::kSplitK;
  extern __shared__ uint8_t smem_raw[];
  // Phase trace (probe builds only): the producer thread 0 and the first consumer thread
  // 128 each stamp and commit a record (tags 210 + EPI and 200 + EPI). The consumer's
  // pairs 2, 5 and 6 are spans over all its tiles (a persistent CTA runs several):
  // epilogues but the last (which points 3 and 4 bound), waits for full stages, waits for
  // wgmmas.
  SFM_TRACE_DECLARE;
  SFM_TRACE_SPANS_DECLARE;
  SFM_TRACE_POINT_BY(0, 0);
  SFM_TRACE_POINT_BY(128, 0);
  uint8_t* smem = smem_raw + ((1024u - (smem_u32(smem_raw) & 1023u)) & 1023u);
  uint8_t* staging = smem + P::kRingBytes;
  uint64_t* full = reinterpret_cast<uint64_t*>(staging + P::kStagingBytes);
  uint64_t* empty = full + kStages;

  // Tiles: the token tiles of one weight tile are adjacent (they share its weights in L2).
  const int t_tiles = (p.m + BT - 1) / BT;
  const int tiles = t_tiles * ((p.n_out + P::kOutCols - 1) / P::kOutCols);
  auto tile_origin = [&](int tile, int& m0, int& c0) {
    m0 = (tile % t_tiles) * BT;
    c0 = (tile / t_tiles) * P::kOutCols;
  };
  // The down GEMM's CTA row blockIdx.y takes K tiles [kt_first, kt_first + k_tiles).
  const int k_tiles_all = (p.k + kBK - 1) / kBK;
  const int kt_first = kDown ? static_cast<int>(blockIdx.y * k_tiles_all / gridDim.y) : 0;
  const int k_tiles =
      kDown ? static_cast<int>((blockIdx.y + 1) * k_tiles_all / gridDim.y) - kt_first : k_tiles_all;
  const int warpgroup = threadIdx.x / 128;

  // Weight stages loaded before the wait for the previous kernel (weights are constant;
  // only x and the outputs depend on it): the down GEMM's first stages, and a gated
  // gate/up GEMM's at one token tile of up to SFM_SWAP_EARLY_GATED_TOKENS, which pays
  // where the kernel before it let it launch early (triggers_next, with the numbers).
  // Not for the other gate/up GEMMs: at M = 128 (GeGLU, SwiGLU) and for the dense
  // 1536x6144 at M = 50 they were 1.0-1.9 us slower (twenty-first session): weights in
  // flight seem to delay the completion of the kernel this one waits for.
  const bool gated_early = kGated && p.m <= SFM_SWAP_EARLY_GATED_TOKENS;
  const int early = (kDown || gated_early) && static_cast<int>(blockIdx.x) < tiles
                        ? min(kDown ? kStages : P::kEarlyGatedStages, k_tiles)
                        : 0;
  // The weight tile (A) of ring stage s: K tile kt of the weight rows at output column c0.
  auto load_weights = [&](int s, int kt, int c0) {
    uint8_t* a_tile = smem + s * P::kStageBytes;
    if constexpr (kGated) {
      // (k, row in group, gate/up, group of 8 units): 8 groups x (8 gate + 8 up rows)
      tma_load_4d(a_tile, &tma_w, &full[s], (kt_first + kt) * kBK, 0, 0, c0 / 8);
    } else {
      tma_load_2d(a_tile, &tma_w, &full[s], (kt_first + kt) * kBK, c0);
    }
  };
  // The weights of stages [0, early) of this CTA's first tile (one thread).
  auto load_early_weights = [&] {
    const int c0 = (blockIdx.x / t_tiles) * P::kOutCols;
    for (int kt = 0; kt < early; ++kt) {
      mbar_expect_tx(&full[kt], P::kStageBytes);  // the stage's x follows after the wait
      load_weights(kt, kt, c0);
      if (kt == 0) {
        SFM_TRACE_POINT_BY(0, 5);
      }
    }
  };
  if (threadIdx.x == 0) {
    init_ring(full, empty, kStages, kConsumers, &tma_x, &tma_w);
    SFM_TRACE_POINT_BY(0, 4);
    if constexpr (!kDown) load_early_weights();  // every thread waits below
  }
  __syncthreads();
  if constexpr (kDown) {
    // The next kernel (the reduce kernel, or the next MLP's gate/up GEMM) may launch now
    // (triggers_next): its CTAs then take SMs as this grid's leave; its own wait still
    // waits for this grid to complete.
    if (p.trigger_next) pdl_trigger();
  } else {
    // A programmatic dependent launch after the input quant; then let the down GEMM launch.
    pdl_wait();
    pdl_trigger();
  }

  if (warpgroup == 0) {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n");
    if (threadIdx.x == 0) {
      // Stage `it` = K tile kt of the tile at (m0, c0): weights (A) and/or tokens (B).
      auto load_stage = [&](int it, int kt, int m0, int c0, bool a, bool b) {
        const int s = it % kStages;
        if (a) {
          mbar_wait(&empty[s], ((it / kStages) & 1) ^ 1);
          mbar_expect_tx(&full[s], P::kStageBytes);
          load_weights(s, kt, c0);
        }
        if (b) {
          tma_load_2d(smem + s * P::kStageBytes + P::kTileABytes, &tma_x, &full[s],
                      (kt_first + kt) * kBK, m0);
        }
      };
      // The down GEMM is a programmatic dependent launch: the weights of its first stages
      // load before it waits for the gate/up GEMM's hidden state (the gate/up GEMM's, if
      // any, were issued before its kernel-wide wait above); then the x of those stages.
      if (static_cast<int>(blockIdx.x) < tiles) {
        int m0, c0;
        tile_origin(blockIdx.x, m0, c0);
        if constexpr (kDown) load_early_weights();
        SFM_TRACE_POINT_BY(0, 1);
        if constexpr (kDown) pdl_wait();
        SFM_TRACE_POINT_BY(0, 2);
        for (int kt = 0; kt < early; ++kt) load_stage(kt, kt, m0, c0, false, true);
        SFM_TRACE_POINT_BY(0, 6);
      }
      int it = 0;
      for (int tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
        int m0, c0;
        tile_origin(tile, m0, c0);
        for (int kt = 0; kt < k_tiles; ++kt, ++it) {
          if (it >= early) load_stage(it, kt, m0, c0, true, true);
        }
      }
      SFM_TRACE_POINT_BY(0, 3);
    }
    if constexpr (kDown) {
      if (p.cluster_reduce) {  // the two cluster barriers of the consumers' reduction
        cluster_sync();
        cluster_sync_relaxed();
      }
    }
    SFM_TRACE_POINT_BY(0, 7);
    SFM_TRACE_COMMIT_BY(0, 210 + static_cast<int>(EPI));
  } else {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 232;\n");
    SFM_TRACE_POINT_BY(128, 1);
    const int cw = warpgroup - 1;
    const int t = threadIdx.x % 128;
    const RowScales row_scale = make_row_scales(p.epi);
    const float inv_hidden = kDown ? 1.0f : inverse_hidden_scale(p.epi);
    constexpr int kParts = P::kParts;
    static_assert(kParts == 1 || kParts == 2 || kParts == 4, "promote() sums 1, 2 or 4 partial sums");
    float acc[BT / 2];
    float part[kParts][BT / 2];
    float part_next[kParts][BT / 2];  // the group after `part`'s (pipelined promotion only)
    constexpr bool kPipelined = !DEEP && BT <= SFM_SWAP_PIPELINED_PROMOTE_TOKENS;
    // Waiting for the next group's stages while holding the previous group's: with fewer
    // than two groups' worth of stages the producer could never fill them (deadlock).
    static_assert(!kPipelined || kStages >= 2 * P::kPromoteTiles,
                  "pipelined promotion needs ring room for two groups' stages");
    // This warpgroup's operands in a stage: its 64 weight rows and all BT tokens.
    const int a_offset = cw * 64 * kBK;
    const int b_offset = P::kTileABytes;

    auto issue_group = [&](float (&dst)[kParts][BT / 2], int it, int kt0, int n) {
      wgmma_gemm::wgmma_fence();
#pragma unroll
      for (int j = 0; j < P::kPromoteTiles; ++j) {
        if (j < n && kt0 + j < k_tiles) {
          const int st = it + kt0 + j;
          const int s = st % kStages;
          SFM_TRACE_SPAN_BEGIN_BY(128, 5);
          mbar_wait(&full[s], (st / kStages) & 1);
          SFM_TRACE_SPAN_END_BY(128, 5);
          const uint64_t da = smem_desc(smem + s * P::kStageBytes + a_offset);  // weights
          const uint64_t db = smem_desc(smem + s * P::kStageBytes + b_offset);  // tokens
#pragma unroll
          for (int kk = 0; kk < kBK / 32; ++kk) {
            wgmma_gemm::wgmma_m64nk32<BT>(dst[kk % kParts], da + 2 * kk, db + 2 * kk,
                                          (j == 0 && kk < kParts) ? 0 : 1);
          }
        }
      }
      wgmma_gemm::wgmma_commit();
    };
    // Waits for the group's wgmmas (PENDING: how many later groups may stay in flight)
    // and hands its stages back to the producer.
    auto finish_group = [&](auto pending, int it, int kt0, int n) {
      SFM_TRACE_SPAN_BEGIN_BY(128, 6);
      wgmma_gemm::wgmma_wait<decltype(pending)::value>();
      SFM_TRACE_SPAN_END_BY(128, 6);
      if (t == 0) {
        for (int j = 0; j < n && kt0 + j < k_tiles; ++j) mbar_arrive(&empty[(it + kt0 + j) % kStages]);
      }
    };
    constexpr std::integral_constant<int, 0> kNoneLeft{};
    constexpr std::integral_constant<int, 1> kOneLeft{};
    auto promote = [&](const float (&src)[kParts][BT / 2]) {
#pragma unroll
      for (int i = 0; i < BT / 2; ++i) {
        if constexpr (kParts == 4) {
          acc[i] += (src[0][i] + src[1][i]) + (src[2][i] + src[3][i]);
        } else if constexpr (kParts == 2) {
          acc[i] += src[0][i] + src[1][i];
        } else {
          acc[i] += src[0][i];
        }
      }
    };

    // Accumulator layout (m64 x BT, fp32): thread t holds weight rows r and r + 8, r =
    // 16 * warp + lane / 4, for tokens 8j + 2 (lane % 4) + {0, 1}: acc[4j + {0, 1}] row r,
    // acc[4j + {2, 3}] row r + 8.
    // The epilogue's per-column multipliers and bias (gate/up GEMMs). The dense GEMM's
    // load when the tile starts, so that their round trip hides under its mainloop:
    // loaded at the epilogue, they had made its epilogue 1.4 us long at M = 50 (phase
    // trace, H200, twenty-first session). The gated GEMM's load at the epilogue: early,
    // its persistent CTAs were slower (GeGLU / SwiGLU M = 200 +1.2 / +3.2 us), and with
    // per-tensor scales there is nothing to load.
    constexpr bool kEarlyParams = !kGated && !kDown;
    struct ColumnParams {
      float sa = 0.f, sb = 0.f, bias_a = 0.f, bias_b = 0.f;
    };
    auto column_params = [&](int c0) {
      ColumnParams cp;
      if constexpr (!kDown) {
        const int warp = t / 32, lane = t % 32;
        const int col_a = kGated ? cw * 32 + warp * 8 + lane / 4 : cw * 64 + warp * 16 + lane / 4;
        const int gcol_a = min(c0 + col_a, p.n_out - 1);  // loads need no guard; stores do
        const int gcol_b = min(c0 + col_a + 8, p.n_out - 1);
        if constexpr (kGated) {
          cp.sa = row_scale(gcol_a);
          cp.sb = row_scale(static_cast<int64_t>(p.n_out) + gcol_a);
        } else {
          cp.sa = row_scale(gcol_a);
          cp.sb = row_scale(gcol_b);
          if (p.epi.bias != nullptr) {
            cp.bias_a = __bfloat162float(p.epi.bias[gcol_a]);
            cp.bias_b = __bfloat162float(p.epi.bias[gcol_b]);
          }
        }
      }
      return cp;
    };

    auto epilogue = [&](int m0, int c0, const ColumnParams& early_params) {
      if (m0 < 0) return;
      const int warp = t / 32, lane = t % 32;
      const int q = lane % 4;
      if constexpr (kDown) {
        if (p.cluster_reduce) {
          // Into the ring as a [token][column] fp32 tile, for the cluster reduction after
          // the loop. A down CTA runs one tile: once both warpgroups are here, every stage
          // has been loaded and read.
          wgmma_gemm::consumers_barrier();
          const int col_a = cw * 64 + warp * 16 + lane / 4;
#pragma unroll
          for (int j = 0; j < BT / 8; ++j) {
            float* row0 = reinterpret_cast<float*>(smem + (8 * j + 2 * q) * P::kPartialPitch);
            float* row1 = reinterpret_cast<float*>(smem + (8 * j + 2 * q + 1) * P::kPartialPitch);
            row0[col_a] = acc[4 * j];
            row0[col_a + 8] = acc[4 * j + 2];
            row1[col_a] = acc[4 * j + 1];
            row1[col_a + 8] = acc[4 * j + 3];
          }
          return;
        }
        // Raw fp32 partial sums, straight from registers: for each j a warp writes 32
        // contiguous bytes (8 output columns) of each of 4 token rows.
        float* ws = static_cast<float*>(p.out) + static_cast<int64_t>(blockIdx.y) * p.m * p.n_out;
        const int col_a = c0 + cw * 64 + warp * 16 + lane / 4;
        const int col_b = col_a + 8;
#pragma unroll
        for (int j = 0; j < BT / 8; ++j) {
          const int tok = m0 + 8 * j + 2 * q;
          float* row0 = ws + static_cast<int64_t>(tok) * p.n_out;
          float* row1 = row0 + p.n_out;
          if (tok < p.m) {
            if (col_a < p.n_out) row0[col_a] = acc[4 * j];
            if (col_b < p.n_out) row0[col_b] = acc[4 * j + 2];
          }
          if (tok + 1 < p.m) {
            if (col_a < p.n_out) row1[col_a] = acc[4 * j + 1];
            if (col_b < p.n_out) row1[col_b] = acc[4 * j + 3];
          }
        }
        return;
      }
      warpgroup_barrier(1 + cw);  // this warpgroup's previous stores have read staging
      // Tile-relative output columns of this thread: gated, one unit (gate row r, up row
      // r + 8); otherwise two columns (rows r and r + 8).
      const int col_a = kGated ? cw * 32 + warp * 8 + lane / 4 : cw * 64 + warp * 16 + lane / 4;
      const int col_b = col_a + 8;  // not gated
      const ColumnParams cp = kEarlyParams ? early_params : column_params(c0);
      const float sa = cp.sa, sb = cp.sb, bias_a = cp.bias_a, bias_b = cp.bias_b;
#pragma unroll
      for (int j = 0; j < BT / 8; ++j) {
        // Token groups past M are not skipped: below 64 tokens the tile is M rounded up to
        // 8 (token_tile), and in larger tiles, where M leaves under 16 tokens of padding,
        // the branches cost more than they save (GeGLU / SwiGLU M = 128 +0.3 us).
        uint8_t* row0 = staging + (8 * j + 2 * q) * P::kPitch;
        uint8_t* row1 = row0 + P::kPitch;
        if constexpr (kGated) {
          const uint16_t h =
              q_pair(activate<ACT>(acc[4 * j] * sa) * (acc[4 * j + 2] * sb) * inv_hidden,
                     activate<ACT>(acc[4 * j + 1] * sa) * (acc[4 * j + 3] * sb) * inv_hidden);
          row0[col_a] = static_cast<uint8_t>(h & 0xffu);
          row1[col_a] = static_cast<uint8_t>(h >> 8);
        } else {
          const uint16_t ha = q_pair(gelu_tanh(acc[4 * j] * sa + bias_a) * inv_hidden,
                                     gelu_tanh(acc[4 * j + 1] * sa + bias_a) * inv_hidden);
          const uint16_t hb = q_pair(gelu_tanh(acc[4 * j + 2] * sb + bias_b) * inv_hidden,
                                     gelu_tanh(acc[4 * j + 3] * sb + bias_b) * inv_hidden);
          row0[col_a] = static_cast<uint8_t>(ha & 0xffu);
          row1[col_a] = static_cast<uint8_t>(ha >> 8);
          row0[col_b] = static_cast<uint8_t>(hb & 0xffu);
          row1[col_b] = static_cast<uint8_t>(hb >> 8);
        }
      }
      warpgroup_barrier(1 + cw);
      // 16-byte stores of this warpgroup's columns of every token row.
      constexpr int kRowBytes = P::kOutCols / kConsumers;
      constexpr int kChunks = kRowBytes / 16;
      const int byte0 = cw * kRowBytes;
      uint8_t* out = static_cast<uint8_t*>(p.out);
      for (int c = t; c < BT * kChunks; c += 128) {
        const int r = c / kChunks;
        const int byte_col = byte0 + (c % kChunks) * 16;
        const int row = m0 + r;
        if (row < p.m && c0 + byte_col < p.n_out) {
          *reinterpret_cast<int4*>(out + static_cast<int64_t>(row) * p.n_out + c0 + byte_col) =
              *reinterpret_cast<const int4*>(staging + r * P::kPitch + byte_col);
        }
      }
    };

    int it = 0;
    int prev_m0 = -1, prev_c0 = 0;
    ColumnParams prev_params;
    for (int tile = blockIdx.x; tile < tiles; tile += gridDim.x, it += k_tiles) {
      int m0, c0;
      tile_origin(tile, m0, c0);
      const ColumnParams params = kEarlyParams ? column_params(c0) : ColumnParams{};
      const int first = min(P::kPromoteTiles, k_tiles);
      issue_group(part, it, 0, first);
      if (prev_m0 >= 0) {
        SFM_TRACE_SPAN_BEGIN_BY(128, 2);
      }
      epilogue(prev_m0, prev_c0, prev_params);
      if (prev_m0 >= 0) {
        SFM_TRACE_SPAN_END_BY(128, 2);
      }
#pragma unroll
      for (int i = 0; i < BT / 2; ++i) acc[i] = 0.0f;
      if constexpr (kPipelined) {
        // Groups alternate between `part` and `part_next`; the one in `part` is in flight.
        constexpr int kP = P::kPromoteTiles;
        for (int kt0 = 0;; kt0 += 2 * kP) {
          if (kt0 + kP >= k_tiles) {
            finish_group(kNoneLeft, it, kt0, kP);
            promote(part);
            break;
          }
          issue_group(part_next, it, kt0 + kP, kP);
          finish_group(kOneLeft, it, kt0, kP);
          promote(part);
          if (kt0 + 2 * kP >= k_tiles) {
            finish_group(kNoneLeft, it, kt0 + kP, kP);
            promote(part_next);
            break;
          }
          issue_group(part, it, kt0 + 2 * kP, kP);
          finish_group(kOneLeft, it, kt0 + kP, kP);
          promote(part_next);
        }
      } else {
        finish_group(kNoneLeft, it, 0, first);
        promote(part);
        for (int kt0 = first; kt0 < k_tiles; kt0 += P::kPromoteTiles) {
          issue_group(part, it, kt0, P::kPromoteTiles);
          finish_group(kNoneLeft, it, kt0, P::kPromoteTiles);
          promote(part);
        }
      }
      prev_m0 = m0;
      prev_c0 = c0;
      prev_params = params;
    }
    SFM_TRACE_POINT_BY(128, 3, __float_as_uint(acc[0]));
    epilogue(prev_m0, prev_c0, prev_params);
    SFM_TRACE_POINT_BY(128, 4);
    if constexpr (kDown) {
      if (p.cluster_reduce) {
        wgmma_gemm::split_cluster_reduce<BT, P::kRows, P::kPartialPitch>(p, smem, prev_m0, prev_c0,
                                                                         threadIdx.x - 128);
      }
    }
    SFM_TRACE_POINT_BY(128, 7);
    SFM_TRACE_COMMIT_BY(128, 200 + static_cast<int>(EPI));
  }
#endif
}

// The gated weights [2 * h, k] as (k, row in group of 8, gate/up, group): one box of
// (128, 8, 2, groups) lands as `groups` x (8 gate rows, the same units' 8 up rows).
inline cudaError_t make_tma_gated_interleaved(CUtensorMap* map, const uint8_t* w, int64_t h,
                                              int64_t k, int groups) {
  const auto encode = encode_fn();
  if (encode == nullptr || h % 8 != 0) return cudaErrorNotSupported;
  const cuuint64_t dims[4] = {static_cast<cuuint64_t>(k), 8, 2, static_cast<cuuint64_t>(h / 8)};
  const cuuint64_t strides[3] = {static_cast<cuuint64_t>(k), static_cast<cuuint64_t>(h * k),
                                 static_cast<cuuint64_t>(8 * k)};
  const cuuint32_t box[4] = {static_cast<cuuint32_t>(kBK), 8, 2, static_cast<cuuint32_t>(groups)};
  return encode_u8_swizzled(map, 4, w, dims, strides, box) == CUDA_SUCCESS ? cudaSuccess
                                                                           : cudaErrorInvalidValue;
}

// Token tile: all of M rounded up to 8 below 64 tokens (wgmma N = 8-56), to 16 from 64;
// above kMaxTokens, M split evenly over the fewest tiles of at most kMaxTokens
// (M = 193: 2 x 112, not 192 + 1: forced at M = 193-256, the 192-token tiles took
// 157-175 us for SwiGLU, the even ones 86-95; scripts/mlp_ab.py, H200, 2026-12-03).
// The small tiles cut the padded tensor-core work that each weight stage waits for (M = 1
// had 63 padding tokens). Whole MLPs (scripts/mlp_ab.py, H200, benchmarks/RESULTS.md,
// twenty-fourth session), 16 / 32 / 48-token tiles against 64: GeGLU M = 1 / 8 / 16 / 24
// / 32 -1.5 to -1.7 / -0.9 to -1.1 / -1.5 to -1.8 / -1.1 / -1.0 to -1.2 us, 33 / 40 / 48
// -0.7 / -0.4 / -0.3; the dense 1152x4304 / 1536x6144 MLPs at M = 40 and 48 -0.5 / -1.1
// and -0.4 / -0.9. Steps of 8 against 16 (M = 50 and 56: 56 tokens, not 64): GeGLU -0.3 /
// -0.3, 1152x4304 -0.3 / -0.2, 1536x6144 -0.55 / -0.3, SwiGLU M = 50 -0.2; within +-0.2
// us at M = 1-40.
inline int token_tile(int64_t m) {
  if (m < 64) return static_cast<int>(std::max<int64_t>(host_ceil_div(m, int64_t(8)), 1) * 8);
  const int64_t tiles = std::max<int64_t>(host_ceil_div(m, int64_t(kMaxTokens)), 1);
  return static_cast<int>(std::clamp<int64_t>(
      host_ceil_div(host_ceil_div(m, tiles), int64_t(16)) * 16, 64, kMaxTokens));
}

// Weight tiles of a GEMM over w_rows weight rows: one per CTA and token tile (every
// plan's kRows, 128).
inline int64_t weight_tiles(int64_t w_rows) {
  return host_ceil_div(w_rows, int64_t(SwapPlan<EpilogueKind::kBiasToBf16, 64>::kRows));
}

// Output tiles of the down GEMM: token tiles x 128-row weight tiles.
inline int64_t down_tiles(int64_t m, int64_t n_out) {
  return host_ceil_div(m, int64_t(token_tile(m))) * weight_tiles(n_out);
}

// K splits of the down GEMM: as many as its tiles leave SMs for, at most 16, each at
// least 4 K tiles.
inline int down_splits(int64_t m, int64_t n_out, int64_t k, int sms) {
  return wgmma_gemm::splits_to_fill(down_tiles(m, n_out), k, sms);
}

// Workspace bytes of the down GEMM: fp32 partial sums [splits][m][n_out].
inline int64_t down_workspace_bytes(int64_t m, int64_t n_out, int64_t k, int sms) {
  return static_cast<int64_t>(down_splits(m, n_out, k, sms)) * m * n_out * 4;
}

// Whether a down GEMM above kMaxTokens tokens fills the GPU on the swap-AB kernel with
// its splits in clusters (at least 2 splits of every tile and 90% of the SMs busy, one
// wave) where the wgmma down GEMM would not split K (its tiles alone would leave SMs
// idle). GeGLU M = 577-768 (4 token tiles x 16 weight tiles x 2 splits) and SwiGLU
// M = 257-384 (2 x 32 x 2); the wgmma tiles there: one wave of 80-96 CTAs.
inline bool down_fills_in_clusters(int64_t m, int64_t n_out, int64_t k, int sms) {
  const int64_t tiles = down_tiles(m, n_out);
  const int64_t splits = std::min<int64_t>(down_splits(m, n_out, k, sms), wgmma_gemm::kMaxClusterSplits);
  return wgmma_gemm::split_k_factor(m, n_out, k, sms) < 2 && splits >= 2 &&
         10 * tiles * splits >= 9 * int64_t(sms);
}

// Whether a gate/up GEMM over w_rows weight rows ([2H, K] gated, [H, K] dense) fills the
// GPU with its 128-row weight tiles (one per CTA at M <= 192). A vision tower's 4304 or
// 6144 columns make 34 or 48 tiles: the wgmma kernel's 64-row tiles are faster there
// (scripts/mlp_ab.py, H200, 2026-12-03).
inline bool fills_gpu(int64_t w_rows, int sms) {
  return weight_tiles(w_rows) >= sms;
}

// Whether a gated MLP's gate/up GEMM nearly fills the GPU with its 128-row weight tiles
// (at least kNearlyFillsPercent of the SMs, one tile each): auto_takes treats it as
// filling it from 65 tokens. Thirty-ninth session, H100, whole MLPs, the gate/up GEMM
// forced onto the swap-AB kernel against the wgmma tiles (call 26,
// results/ab_small_gated_prefill_h100_*): Gemma-3-1B 1152x6912 (108 tiles) and
// Llama-3.2-1B 2048x8192 (128 tiles) faster at every M measured from 65 to 512 or even
// (0.6-4.7 us, e.g. 1152x6912 M = 160 25.3 -> 20.6 us; 2048x8192 M = 384 / 512 even);
// Qwen2.5-0.5B 896x4864 (76 tiles) mixed above 128 (M = 192 / 384 +1.2 / +1.1 us).
#ifndef SFM_SWAP_NEARLY_FILLS_PERCENT  // 100: the rule off (fills_gpu alone)
#define SFM_SWAP_NEARLY_FILLS_PERCENT 80
#endif
constexpr int kNearlyFillsPercent = SFM_SWAP_NEARLY_FILLS_PERCENT;
inline bool nearly_fills_gpu(int64_t w_rows, int sms) {
  return 100 * weight_tiles(w_rows) >= kNearlyFillsPercent * int64_t(sms);
}

// Whether the swap-AB token tiles pad M less than the wgmma kernel's 128-token tiles.
// Above 512 tokens the gate/up GEMMs whose tiles fill the GPU take the swap-AB kernel
// where they do: there the last 128-token tile is partly padding. Forced, whole MLPs
// (scripts/mlp_ab.py, H200, benchmarks/RESULTS.md, eighteenth session), swap-AB gate/up
// minus the wgmma tiles: SwiGLU M = 520 / 576 / 648 / 1040 / 2064 -8.8 / -4.0 / -14.2 /
// -32.0 / -49.9 us, GeGLU -14.2 / -12.2 / -11.6 / -22.2 / -25.6 (torch.compile had been
// up to 14% faster than the wgmma tiles at SwiGLU M = 520-1040). At multiples of 128
// (512-8192) the two were within the run's noise (SwiGLU M = 512 +9.8, 2048 -18.0, 8192
// -1.1; GeGLU 1024 -17.0, 8192 -38.6, 2048 +0.1), so they stay on the wgmma tiles.
inline bool pads_less(int64_t m) {
  const int64_t bt = token_tile(m);
  const int64_t tall = wgmma_gemm::Shape<false, 128>::kBM;  // the wgmma kernel's token tile
  return host_ceil_div(m, bt) * bt < host_ceil_div(m, tall) * tall;
}

// Where the auto path takes the swap-AB kernels, for a GEMM of m tokens over a [w_rows, k]
// weight (down: the down GEMM; l2_resident: the weight stays in L2 between calls).
// M = 65..384 (K <= 2048: to 512): gate/up GEMMs whose weight tiles fill the GPU (above
// 192 as two or three even token tiles, see token_tile: whole MLPs at M = 193 / 208 / 224
// / 240 took SwiGLU 9.3 / 8.8 / 7.7 / 1.8 us less than with the wgmma tiles, GeGLU 4.3 /
// 2.8 / 3.3 / 0.1; at M = 241-384, where the wgmma kernel's third 128-token tile is
// mostly padding, SwiGLU 1.5-16.9 and GeGLU 0.1-11.8 us less (M = 257: 117 -> 101 and
// 76 -> 64 us); at 385-512 GeGLU 6-22 us less, SwiGLU 8-26 us more; seventeenth
// session). M = 65..192:
// down GEMMs, except L2-resident ones above 160 tokens (a vision tower's: the split-K
// wgmma tiles were up to 1.7 us faster at M = 192); above 192 the split-K wgmma tiles
// were faster (SwiGLU up to 3.8 us, at M = 224). M = 1..64, where the wide wgmma tiles
// (and up to 16 tokens the streaming kernel) also hold every token: with 64-token tiles
// only the GeGLU-sized GEMMs measured faster (gate/up with K <= 2048, down with N <= 2048
// from DRAM: 1.5-2.4 us per MLP at M = 17..64, 2.1-2.5 at M = 8 and 16, 2.1-2.6 at M = 1,
// 2 and 4), SwiGLU's were 1.3-2.9 us slower at M = 17..64 (scripts/mlp_ab.py, H200,
// benchmarks/RESULTS.md, 2026-12-03, fifteenth and sixteenth sessions). With the small
// token tiles (token_tile; measured with 16 / 32 / 48) also SwiGLU's (twenty-fourth
// session, whole MLPs against the wide wgmma gate/up and the streaming or split-K down
// GEMM): both GEMMs on this kernel, the down GEMM over a workspace, M = 1 / 8 / 16 / 24
// / 32 / 39 -4.2 / -2.7 / -2.7 / -2.2 / -2.4 / -1.9 us (the down GEMM in clusters -2.5 /
// -1.9 / -1.8 / -2.4 / -2.2 / -1.5); at 40 / 48 (clusters, as before) -0.8 / -0.7; so
// gate/up GEMMs of any K to 48 tokens, and down GEMMs with N <= 4096 from DRAM at every
// M to 64 (SwiGLU's at 49-64 were on this kernel already, below). SwiGLU's gate/up GEMM
// at 49-64 measured +0.3-0.5 us against the wide wgmma tiles then; with the deep ring
// (SwapPlan) -0.67 / -0.30 / -0.35 / -0.24 / -0.73 us at M = 49 / 50 / 56 / 57 / 64
// (twenty-fifth session), so every gate/up GEMM that fills the GPU, at any K, takes this
// kernel below 65 tokens.
// Above 192, down GEMMs where down_fills_in_clusters says so (seventeenth session), and
// narrow L2-resident ones with unaligned K to 896 tokens (narrow_l2_down_takes). Above
// 512, gate/up GEMMs that fill the GPU where pads_less says so (eighteenth session).
// SwiGLU's down GEMM (N = 4096) took this kernel from 40 tokens first (reduced in
// clusters, 64-token tiles: against the split-K cluster wgmma tiles M = 32 / 50 -0.5 /
// -1.1 us, M = 1 / 8 / 16 -0.4 / +0.0 / +0.7; eighteenth session,
// results/swiglu_decode_swap_ab_*), from 1 with the small token tiles (above).
// An L2-resident down GEMM with at most kMaxNarrowL2DownCols output columns whose K is
// not a whole number of 128-byte K tiles (SigLIP's 1152x4304: K = 4304, every weight row
// straddling L2 lines) takes the swap-AB kernel up to kMaxNarrowL2DownTokens tokens.
// Forced against auto, whole MLPs (scripts/mlp_ab.py, H200, twenty-second session):
// 1152x4304 -0.3 to -5.4 us at every M measured from 161 to 896 (M = 200 18.3 -> 16.3,
// 512 27.1 -> 24.6, 768 36.4 -> 31.0) but 384 (+0.7), +3.3 at 1024. The aligned towers
// measured were slower or mixed there: 768x3072 +0.4 to +2.0 us at M = 161-896 (-0.9 at
// 256), 1536x6144 -0.6 to +3.9 at 256-768. K alignment is the one property that
// separates them here; a single unaligned shape was measured.
constexpr int64_t kMaxNarrowL2DownCols = 1152;
constexpr int64_t kMaxNarrowL2DownTokens = 896;
inline bool narrow_l2_down_takes(int64_t m, int64_t n_out, int64_t k) {
  return n_out <= kMaxNarrowL2DownCols && k % kBK != 0 && m <= kMaxNarrowL2DownTokens;
}

inline bool auto_takes(int64_t m, bool down, int64_t w_rows, int64_t k, bool l2_resident,
                       int sms, bool gated = false) {
  if (!down && m > kMaxAutoTokensShortK) return fills_gpu(w_rows, sms) && pads_less(m);
  if (m >= kMinSmallTokens && m < kMinTokens) {
    if (!down) return fills_gpu(w_rows, sms);
    return !l2_resident && w_rows <= 4096;
  }
  if (down && l2_resident && m >= kMinTokens && narrow_l2_down_takes(m, w_rows, k)) return true;
  if (down && m > kMaxTokens) return !l2_resident && down_fills_in_clusters(m, w_rows, k, sms);
  const int64_t max_tokens = down ? kMaxTokens : k <= 2048 ? kMaxAutoTokensShortK : kMaxAutoTokens;
  if (m < kMinTokens || m > max_tokens) return false;
  return down ? m <= 160 || !l2_resident
              : fills_gpu(w_rows, sms) || (gated && nearly_fills_gpu(w_rows, sms));
}

// Whether auto takes the swap-AB kernel for an L2-resident GEMM (a vision tower's up or
// down GEMM, of a [w_rows, k] weight) at M = kMinL2Tokens..64, ahead of the
// register-sourced wgmma and warp kernels; a dense MLP's up GEMM, and a down GEMM that
// narrow_l2_down_takes (SigLIP's 1152x4304), from kMinL2EarlyTokens (its knob was
// SFM_SWAP_MIN_L2_UP_TOKENS until the thirty-third session, named before it took that
// down GEMM). Whole MLPs (H200, scripts/mlp_ab.py): sixteenth session, both GEMMs on it,
// 1152x4304 0.6 / 1.0 / 2.1 / 2.5 us faster at M = 33 / 40 / 50 / 64, slower at 32 and
// below. Thirtieth session, after the deep rings, 8-token tiles and pipelined promotion:
// both GEMMs on it 1.6-2.2 us faster at M = 33-39 for 1152x4304, 1536x6144 and 768x3072;
// the up GEMM alone at M = 8-32 0.3-0.4 us faster for 1152x4304, 1.4-1.7 for 768x3072,
// within -0.2 / +0.35 for 1536x6144; the down GEMM there too, against the up GEMM alone,
// 0.1-0.5 us faster for 1152x4304 at every M measured (8, 9, 12, 16, 17, 24, 25, 32; M =
// 16 7.72 -> 7.35 us), 0.1-0.55 slower for 768x3072 and 0.35-1.1 for 1536x6144 (at 9-32;
// -0.8 at 8): results/dense_swap_{8_16,17_40}_ab_h200_2026-12-05_thirtieth.txt. Not for
// gated gate/up GEMMs (not measured). Thirty-sixth session, H100, the whole auto MLP
// against l2r40 (results/ab_l2_h100_2026-12-05_thirtysixth.txt): 1152x4304 and 768x3072
// 0.6-1.5 us faster at M = 8-32, but 1536x6144 0.4-0.9 us slower at 9-32 and 1536x4304
// 0.2-0.4 at 25-32: the up GEMM goes early only up to K = kMaxL2EarlyUpK.
// Thirty-eighth session, H100, forced paths on one build against auto (the warp kernel
// for both GEMMs below 8 tokens, and for the aligned towers at 8;
// results/ab_small_m_h100_2026-12-05_thirtyeighth.txt): both GEMMs on the swap-AB kernel
// were 0.06-0.69 us faster at M = 4-8 for 1536x6144, 768x3072, 1536x4304 and 1152x4304
// alike, never slower there, and 0.5-1.1 us slower at M = 1-2: 1536x6144 had cost 10.35 us
// at M = 8 against 8.87 at 16, the warp kernel copying all of x (8 x 6144 bytes) into
// every CTA. But that window (kMinL2SmallTokens to kMaxL2SmallTokens) is off by default:
// the warp kernel's mma.sync sums in fp32 and lands 100x closer to the contract's fp32
// reference than any wgmma kernel (mean relative error 2e-5 to 8e-5 against 4e-3,
// results/path_errors_h100_2026-12-05_thirtyeighth.txt), and with only 4 token rows the
// wgmma kernels' errors reach past the contract's 1e-2 (SmolLM2-135M-sized 576x1536 at
// M = 4: 2 of 80 random draws on the swap-AB kernel, 1 of 80 on the register-sourced
// one; a GPU test at 896x4864 M = 4, 1.13e-2).
inline bool l2_mid_takes(int64_t m, bool down, int64_t w_rows, int64_t k) {
  if (m >= kMinL2SmallTokens && m <= kMaxL2SmallTokens) return true;
  const bool early = (!down && k <= kMaxL2EarlyUpK) || narrow_l2_down_takes(m, w_rows, k);
  return m >= (early ? kMinL2EarlyTokens : kMinL2Tokens) && m < kMinTokens;
}

// Whether auto takes the swap-AB kernel for an L2-resident GEMM of a gated MLP (its
// gate/up or its down GEMM: a small LLM's, e.g. Qwen2.5-0.5B 896x4864, Qwen3-0.6B
// 1024x3072, Gemma-3-1B 1152x6912) at kMinL2GatedTokens..64 tokens, ahead of the
// register-sourced kernel. Thirty-eighth session, H100, forced paths of one build
// against auto (warp kernel to 8 tokens, register-sourced 9-64;
// results/ab_small_gated_h100_2026-12-05_thirtyeighth.txt), both GEMMs on it: 0.24-8.7 us
// (3-40%) faster at every M measured from 4 to 64 for all three, e.g. 1152x6912 M = 16
// 16.4 -> 10.8 us, M = 64 21.7 -> 13.0; at M = 1-2 mixed (1152x6912 -1.4 / -2.3, the
// other two +0.3 to +0.9). The gate/up GEMM alone on it was slower than both at 12-32
// for 1152x6912 (its down GEMM then on the register-sourced kernel). Whole auto MLPs
// against the rule off (results/ab_gated_l2_h100_2026-12-05_thirtyeighth.txt, 9 rounds):
// 8-40% faster at every M from 9 to 64 for SmolLM2-135M 576x1536, 896x4864, 1024x3072,
// 1152x6912, and Llama-3.2-1B 2048x8192 at 9-32 (its 16 MiB down GEMM; from 33 the rule
// above takes it); the dense towers unchanged. From kMinL2GatedTokens: below, the warp
// kernel's fp32 sums keep small batches well inside the contract's 1e-2 (see
// l2_mid_takes); from 9 the register-sourced kernel that this
// replaces is a wgmma kernel too, of the same precision (path_error_probe.py: mean
// relative error 4.0-4.2e-3 on the swap-AB kernel, 4.8-5.0e-3 on it, at M = 16 and 64).
// The gate/up GEMM also at 65..kMaxL2GatedUpTokens, where it had the wgmma tiles (its
// 128-row tiles do not fill the GPU); the down GEMM takes this kernel there anyway
// (auto_takes). Thirty-ninth session, H100, the gate/up GEMM forced onto it against auto,
// whole MLPs, 7 rounds (call 26, results/ab_small_gated_prefill_h100_*): M = 65 / 96
// 0.84-1.94 us (6-15%) faster for 576x1536, 896x4864, 1024x3072 and 1152x6912, M = 128
// within -0.27 / +0.08 us; above 128 mixed for those with fewer than 100 weight tiles
// (576x1536 M = 160 / 192 +0.8 / +1.2 us, 1024x3072 M = 512 +2.6).
#ifndef SFM_SWAP_L2_GATED  // 0: a gated MLP's L2-resident GEMMs as a dense MLP's (the rule off)
#define SFM_SWAP_L2_GATED 1
#endif
inline bool l2_gated_takes(int64_t m, bool down) {
  return SFM_SWAP_L2_GATED && m >= kMinL2GatedTokens &&
         (down ? m < kMinTokens : m <= kMaxL2GatedUpTokens);
}

// Whether the down GEMM (and behind it the reduce kernel, reduced over a workspace) lets
// the next kernel launch as it starts rather than when its work is done
// (p.trigger_next): for down weights streamed from DRAM, reduced over the workspace or
// in clusters with at most kMaxTriggerClusterCols output columns. The next MLP's gate/up
// GEMM then loads its first weight stages (SFM_SWAP_EARLY_GATED_TOKENS) while the down
// GEMM and the reduce finish. Whole MLPs, both together against neither (H200,
// scripts/mlp_ab.py, benchmarks/RESULTS.md, twenty-third session): GeGLU M = 1 / 8 / 16
// -2.5 / -2.4 / -0.9 us, 32 +0.1, 50 / 64 -1.5 / -1.3, 65-128 -0.6 to -1.1 (before the
// clusters from 16 tokens, below); SwiGLU (N = 4096) M = 40 / 50 / 64 -0.1 / -0.5 / -0.7
// once its next gate/up GEMM (the wgmma kernel) loaded early too (before that, M = 50
// +2.1); above 192 tokens (SwiGLU M = 257-384, GeGLU 600-768) within -0.4 to +0.8 us of
// 100-125. Not for L2-resident ones (the dense 1152x4304 at M = 160 +2.1 us, 1536x6144
// at M = 50 +0.5).
constexpr int64_t kMaxTriggerClusterCols = 4096;
#ifndef SFM_SWAP_EARLY_REDUCE  // experiment 10, see launch_down
#define SFM_SWAP_EARLY_REDUCE 0
#endif
inline bool triggers_next(int64_t n_out, bool in_clusters, bool l2_resident) {
  return !l2_resident && (!in_clusters || n_out <= kMaxTriggerClusterCols);
}

// Whether the down GEMM's K splits reduce in clusters over distributed shared memory
// (launch_down_cluster: no workspace, no reduce kernel) rather than over a workspace and
// a reduce kernel (launch_down). Both forced, whole MLPs (scripts/mlp_ab.py, H200,
// benchmarks/RESULTS.md, seventeenth session), clusters minus workspace:
// - weights from DRAM (GeGLU, N = 2048; SwiGLU, N = 4096): GeGLU +0.75 us at M = 1, within
//   0.15 at 4-32, -0.2 at 40-64; both -0.2 to -1.2 at 65-192 (GeGLU M = 100 +0.1, SwiGLU
//   M = 192 +0.2);
// - L2-resident (a vision tower's, N = 1152 or 1536): 1536x6144 -0.2 to -0.9 at 40-160;
//   1152x4304 +0.1 to +0.4 at 40-64, -0.1 to -0.2 at 65-128, +0.9 at 160.
// So: from kMinClusterDownTokens tokens, L2-resident ones only from kMinClusterDownL2Cols
// output columns; and since both let the next kernel launch early (triggers_next), down
// GEMMs from DRAM with N <= kMaxEarlyClusterCols from kMinClusterTriggerTokens (GeGLU,
// twenty-third session, 64-token tiles: clusters minus workspace -1.0 / -1.8 / -1.7 /
// -1.6 us at M = 16 / 24 / 32 / 39, +0.9 / +1.0 at M = 1 / 8; twenty-fourth session, the
// tiles of M rounded up to 8: M = 1 / 2 / 4 +0.03 / +0.09 / +0.15, M = 6 / 8 / 10 / 12 /
// 15 -0.12 / -0.37 to -0.53 / -0.68 / -0.92 / -1.53, 16-50 within +-0.2). With the deep
// ring that only the cluster reduction has (SwapPlan; twenty-fifth session) also SwiGLU's
// (N = 4096) below 40 tokens and GeGLU's from 2: clusters minus workspace, SwiGLU M = 1 / 8
// / 16 / 32 / 39 +0.02 / -0.81 / -1.08 / -0.85 / -0.91 us, GeGLU M = 1 / 2 / 4 / 5 -0.03 /
// -0.55 / -0.71 / -0.75; so kMaxEarlyClusterCols is 4096 and kMinClusterTriggerTokens 2.
// SFM_SWAP_DOWN_CLUSTER 0: never; 2: always; 1: by this rule.
#ifndef SFM_SWAP_DOWN_CLUSTER
#define SFM_SWAP_DOWN_CLUSTER 1
#endif
constexpr int64_t kMinClusterDownL2Cols = 1536;
constexpr int64_t kMinClusterTriggerTokens = 2;
constexpr int64_t kMaxEarlyClusterCols = 4096;
inline bool down_in_clusters(int64_t m, int64_t n_out, bool l2_resident) {
  if (SFM_SWAP_DOWN_CLUSTER != 1) return SFM_SWAP_DOWN_CLUSTER == 2;
  if (!l2_resident && n_out <= kMaxEarlyClusterCols) return m >= kMinClusterTriggerTokens;
  return m >= kMinClusterDownTokens && (!l2_resident || n_out >= kMinClusterDownL2Cols);
}

// splits: the down GEMM's K splits (gridDim.y); with p.cluster_reduce they are one
// cluster, and down_splits' as many as fit at once are computed here
// (wgmma_gemm::fitting_cluster_splits; 1, no reduction, where none does).
template <EpilogueKind EPI, Activation ACT, int BT, bool DEEP>
cudaError_t launch_bt(const uint8_t* x, const uint8_t* w, const WgmmaParams& p, int sms,
                      int splits, cudaStream_t stream) {
  using P = SwapPlan<EPI, BT, DEEP>;
  SFM_TRACE_BIND();
  if (p.x_pitch != 0 || p.out_pitch != 0) return cudaErrorInvalidValue;  // packed rows only
  CUtensorMap tma_x, tma_w;
  cudaError_t e = make_tma(&tma_x, x, p.m, p.k, BT, kBK);
  if (e != cudaSuccess) return e;
  e = P::kGated ? make_tma_gated_interleaved(&tma_w, w, p.n_out, p.k, P::kRows / 16)
                : make_tma(&tma_w, w, p.n_out, p.k, P::kRows, kBK);
  if (e != cudaSuccess) return e;
  constexpr auto kernel = fp8_gemm_swap_kernel<EPI, ACT, BT, DEEP>;
  e = allow_dynamic_smem<kernel>(P::kSmemBytes);
  if (e != cudaSuccess) return e;
  const int64_t tiles = host_ceil_div(p.m, BT) * host_ceil_div(p.n_out, P::kOutCols);
  if (P::kSplitK && p.cluster_reduce) {
    splits = wgmma_gemm::fitting_cluster_splits<kernel>(down_splits(p.m, p.n_out, p.k, sms), tiles,
                                                        P::kSmemBytes);
  }
  cudaLaunchConfig_t config = {};
  // Gate/up: persistent CTAs, one per SM. Down: one CTA per weight tile and K split.
  config.gridDim = P::kSplitK ? dim3(static_cast<unsigned>(tiles), static_cast<unsigned>(splits))
                              : dim3(static_cast<unsigned>(std::min<int64_t>(tiles, std::max(sms, 1))));
  config.blockDim = dim3(kThreads, 1, 1);
  config.dynamicSmemBytes = P::kSmemBytes;
  config.stream = stream;
  cudaLaunchAttribute attr[2];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  attr[1].id = cudaLaunchAttributeClusterDimension;
  attr[1].val.clusterDim.x = 1;
  attr[1].val.clusterDim.y = static_cast<unsigned>(splits);
  attr[1].val.clusterDim.z = 1;
  config.attrs = attr;
  config.numAttrs = P::kSplitK && p.cluster_reduce ? 2 : 1;
  return cudaLaunchKernelEx(&config, kernel, tma_x, tma_w, p);
}

template <EpilogueKind EPI, Activation ACT, bool DEEP>
cudaError_t launch_tile(const uint8_t* x, const uint8_t* w, const WgmmaParams& p, int sms,
                        int splits, cudaStream_t stream) {
  switch (token_tile(p.m)) {
    case 8: return launch_bt<EPI, ACT, 8, DEEP>(x, w, p, sms, splits, stream);
    case 16: return launch_bt<EPI, ACT, 16, DEEP>(x, w, p, sms, splits, stream);
    case 24: return launch_bt<EPI, ACT, 24, DEEP>(x, w, p, sms, splits, stream);
    case 32: return launch_bt<EPI, ACT, 32, DEEP>(x, w, p, sms, splits, stream);
    case 40: return launch_bt<EPI, ACT, 40, DEEP>(x, w, p, sms, splits, stream);
    case 48: return launch_bt<EPI, ACT, 48, DEEP>(x, w, p, sms, splits, stream);
    case 56: return launch_bt<EPI, ACT, 56, DEEP>(x, w, p, sms, splits, stream);
    case 64: return launch_bt<EPI, ACT, 64, DEEP>(x, w, p, sms, splits, stream);
    case 80: return launch_bt<EPI, ACT, 80, DEEP>(x, w, p, sms, splits, stream);
    case 96: return launch_bt<EPI, ACT, 96, DEEP>(x, w, p, sms, splits, stream);
    case 112: return launch_bt<EPI, ACT, 112, DEEP>(x, w, p, sms, splits, stream);
    case 128: return launch_bt<EPI, ACT, 128, DEEP>(x, w, p, sms, splits, stream);
    case 144: return launch_bt<EPI, ACT, 144, DEEP>(x, w, p, sms, splits, stream);
    case 160: return launch_bt<EPI, ACT, 160, DEEP>(x, w, p, sms, splits, stream);
    case 176: return launch_bt<EPI, ACT, 176, DEEP>(x, w, p, sms, splits, stream);
    case 192: return launch_bt<EPI, ACT, 192, DEEP>(x, w, p, sms, splits, stream);
    default: return cudaErrorInvalidValue;
  }
}

// Gate/up GEMM. x: [m, k] FP8; w: [2 * n_out, k] (gated: gate rows, then up rows) or
// [n_out, k].
template <EpilogueKind EPI, Activation ACT>
cudaError_t launch(const uint8_t* x, const uint8_t* w, const WgmmaParams& p, int sms,
                   cudaStream_t stream) {
  static_assert(EPI != EpilogueKind::kBiasToBf16, "the down GEMM: launch_down");
  if (p.m == 0 || p.n_out == 0) return cudaSuccess;
  return launch_tile<EPI, ACT, /*DEEP=*/EPI == EpilogueKind::kGatedToFp8>(x, w, p, sms, 1, stream);
}

// Down GEMM with the K splits of each tile in one cluster, reduced over distributed
// shared memory by the same kernel (wgmma_gemm::split_cluster_reduce): no workspace and
// no reduce kernel.
template <Activation ACT>
cudaError_t launch_down_cluster(const uint8_t* x, const uint8_t* w, const WgmmaParams& p,
                                int sms, cudaStream_t stream) {
  if (p.m == 0 || p.n_out == 0) return cudaSuccess;
  WgmmaParams q = p;
  q.cluster_reduce = 1;
  return launch_tile<EpilogueKind::kBiasToBf16, ACT, /*DEEP=*/true>(x, w, q, sms, 0, stream);
}

// Down GEMM: K-split partial sums into ws, then wgmma_gemm::split_k_reduce_kernel.
template <Activation ACT>
cudaError_t launch_down(const uint8_t* x, const uint8_t* w, const WgmmaParams& p, float* ws,
                        int64_t ws_bytes, int sms, cudaStream_t stream) {
  if (p.m == 0 || p.n_out == 0) return cudaSuccess;
  if (ws == nullptr || ws_bytes < down_workspace_bytes(p.m, p.n_out, p.k, sms)) {
    return cudaErrorInvalidValue;
  }
  const int splits = down_splits(p.m, p.n_out, p.k, sms);
  WgmmaParams partial = p;
  partial.out = ws;
  // Experiment 10 (thirty-ninth session): where the chain does not trigger early
  // (L2-resident weights, triggers_next), the GEMM still lets its reduce kernel launch as
  // it starts: the reduce's CTAs then wait on free SMs for the partial sums instead of
  // launching after the GEMM's last CTA exits, and the reduce itself triggers the next
  // kernel only after its wait, as before. Whole MLPs, H100, call 35 (RESULTS.md): mixed,
  // 1152x4304 -0.42 us at M = 128 only, 1152x6912 +1.2 to +4.1 us at 64-160. 0: off.
  if (SFM_SWAP_EARLY_REDUCE) partial.trigger_next = 1;
  cudaError_t e =
      launch_tile<EpilogueKind::kBiasToBf16, ACT, /*DEEP=*/false>(x, w, partial, sms, splits, stream);
  if (e != cudaSuccess) return e;
  return wgmma_gemm::reduce_splits(ws, splits, p, /*programmatic=*/true, stream);
}

}  // namespace swap_gemm
}  // namespace
}  // namespace static_fp8_mlp
