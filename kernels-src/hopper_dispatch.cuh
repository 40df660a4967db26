// Which Hopper kernel runs a GEMM (hopper::pick), from its shape, the forced path and
// the device's multiprocessor count. Host code only, with no device query, so that
// tests/test_dispatch_rules.py can check the choices on the CPU; hopper_backend.cuh
// queries the device and launches.
#pragma once

#include "backend_registry.h"
#include "fp8_gemm_swap.cuh"

// Tuning knobs (defaults measured on H200; overridable for tuning builds).
#ifndef SFM_WGMMA_SPLIT_K  // 1: auto splits the wgmma down GEMM over K when its tiles are few
#define SFM_WGMMA_SPLIT_K 1
#endif
#ifndef SFM_MAX_WARP_TOKENS  // auto: the register-streaming warp kernel up to this many tokens
#define SFM_MAX_WARP_TOKENS 32
#endif
#ifndef SFM_MAX_WARP_WEIGHT_MB  // ... for weight matrices up to this size (L2-resident)
#define SFM_MAX_WARP_WEIGHT_MB 16
#endif
#ifndef SFM_RS_MIN_TOKENS  // auto: register-sourced wgmma for L2-resident GEMMs from here,
#define SFM_RS_MIN_TOKENS 9
#endif
#ifndef SFM_RS_MIN_X_BYTES  // ... or from this much x (the warp kernel copies all of it per CTA)
#define SFM_RS_MIN_X_BYTES 73728
#endif
#ifndef SFM_MAX_RS_TOKENS  // ... up to this many tokens
#define SFM_MAX_RS_TOKENS 64
#endif
#ifndef SFM_MAX_STREAM_TOKENS  // auto: the weight-streaming kernel up to this many tokens
#define SFM_MAX_STREAM_TOKENS 16
#endif
#ifndef SFM_STREAM_GATED_GEMM1  // 1: ... for the gated GEMM1 too (0: the wide wgmma kernel)
#define SFM_STREAM_GATED_GEMM1 0
#endif
#ifndef SFM_SPLIT_IN_CLUSTERS  // auto split-K reduced in clusters: 0 never, 1 where measured faster, 2 always
#define SFM_SPLIT_IN_CLUSTERS 1
#endif
#ifndef SFM_WGMMA_SWAP_AB  // auto GEMMs at M = 1..768 on the swap-AB kernel (0: never)
#define SFM_WGMMA_SWAP_AB 1
#endif

namespace static_fp8_mlp {
namespace {
namespace hopper {

// Dispatch by batch size, measured on H100/H200 (scripts/perf_probe.py, benchmarks/RESULTS.md):
// - a GEMM whose weights fit in L2 (a vision tower's MLP) is latency-bound up to 64
//   tokens: the register-streaming kernels, whose only dependent memory trips are
//   their weights (fetched before the previous kernel ends) and x. The warp kernel
//   (mma.sync) for the fewest tokens; the register-sourced wgmma kernel from 9 tokens
//   or 72 KiB of x (rs_preferred) to kMaxRsTokens (64), where mma.sync's rate on sm_90
//   and the warp kernel's copy of all of x into every CTA cost more than the wgmma
//   kernel's cluster reduction; the warp kernel also where the wgmma one does not take
//   the problem, up to kMaxWarpTokens; except from 33 tokens, and for a dense MLP's up
//   GEMM with K <= 1152 and SigLIP's 1152x4304 down GEMM from 8 (swap_gemm::l2_mid_takes), where the
//   swap-AB kernel (the weights streamed through a TMA ring, every token in one tile)
//   was faster; and both GEMMs of a gated MLP (a small LLM's) from 9 tokens to 64, its
//   gate/up GEMM to 128 (swap_gemm::l2_gated_takes; below 9 the warp kernel is kept
//   for its fp32 sums);
// - up to 16 tokens every other GEMM is a pass over DRAM: the streaming kernel, whose
//   TMA ring keeps more bytes in flight; except the gated GEMM1, where the wide wgmma
//   kernel streams as fast or faster (H200, M = 8..40: GeGLU equal, SwiGLU 2 us faster
//   at M = 8 / 16), and above 16 tokens, where the wide wgmma kernel and the split-K
//   down GEMM beat it (M = 17..32: GeGLU 40.5 -> 35.5 us, SwiGLU 59 -> 53);
// - from 65 to 384 tokens (gate/up GEMMs with K <= 2048: 512), where
//   swap_gemm::auto_takes says so (measured faster; gated gate/up GEMMs whose tiles
//   nearly fill the GPU count as filling it: nearly_fills_gpu), for GeGLU-sized GEMMs at every M
//   up to 64, SwiGLU-sized down and gate/up GEMMs too (8- to 64-token tiles; ahead of
//   both kernels above), and for
//   gate/up GEMMs above 512 where their token tiles pad less: the swap-AB kernels,
//   every token in one wgmma N tile up to 192, even tiles above (the down GEMM split
//   over K, up to 192, and above where its tiles then fill the GPU); its splits reduce
//   in clusters where swap_gemm::down_in_clusters says so (from 2 tokens for weights
//   from DRAM with N <= 4096, from 40 for the others, L2-resident ones only with
//   N >= 1536), else over a workspace and a reduce kernel;
// - the down GEMM is split over K (wide wgmma tiles, fp32 partials, one reduce kernel)
//   whenever its output tiles alone would leave at least half of the SMs idle; where
//   that was measured faster (split_in_clusters) the splits of a tile reduce over
//   distributed shared memory in one cluster instead, with no reduce kernel;
// - without that split (SFM_WGMMA_SPLIT_K=0), up to 128 tokens the down GEMM streams
//   when N <= 2048 (tall wgmma tiles would give it only N / 128 CTAs);
// - everything else: persistent wgmma CTAs, wide 64-token tiles up to
//   wgmma_gemm::kMaxWideTokens tokens and for the gate/up GEMMs at 129..192
//   (wgmma_gemm::wide_shape), tall 128-token tiles otherwise (64, 128 or 192 weight
//   rows by tile count: wgmma_gemm::tall_rows; the SwiGLU-sized gate/up GEMM at one
//   token tile in CTA pairs that multicast it: wgmma_gemm::share_x).
constexpr int64_t kMaxStreamTokens = SFM_MAX_STREAM_TOKENS;
constexpr int64_t kMaxWarpTokens = SFM_MAX_WARP_TOKENS;
constexpr int64_t kMaxWarpWeightBytes = int64_t(SFM_MAX_WARP_WEIGHT_MB) << 20;
// Whether a [w_rows, k] FP8 weight counts as L2-resident between calls (the dispatcher's
// bound: kMaxWarpWeightBytes).
inline bool l2_resident_weights(int64_t w_rows, int64_t k) {
  return w_rows * k <= kMaxWarpWeightBytes;
}
constexpr int64_t kMaxStreamGemm2Tokens = 128;
constexpr int64_t kMaxRsTokens = SFM_MAX_RS_TOKENS;
inline bool rs_preferred(int64_t m, int64_t k) {
  return m >= SFM_RS_MIN_TOKENS || m * k >= SFM_RS_MIN_X_BYTES;
}

enum class Kernel {
  kWarp, kRegWgmma, kStream, kWgmma, kWgmmaSplitK, kWgmmaSplitKCluster, kSwapAB,
  kSwapABCluster, kPortable
};

// The swap-AB kernel for a GEMM: for the down GEMM (n_out = N), its splits reduced in
// clusters (swap_gemm::down_in_clusters) or over a workspace and a reduce kernel.
inline Kernel swap_kernel(int64_t m, bool gemm2, int64_t n_out, bool l2_resident) {
  return gemm2 && swap_gemm::down_in_clusters(m, n_out, l2_resident) ? Kernel::kSwapABCluster
                                                                      : Kernel::kSwapAB;
}

// Whether the split down GEMM reduces in clusters (auto). Clusters hold at most 8 CTAs
// and must all fit at once, so they often get fewer splits than the workspace path
// (H200: 8 for GeGLU's 16 at M <= 64, 6 for SwiGLU's 8, 8 for 1536x6144's 11). Both
// forced, whole MLPs, M = 17..384 (scripts/mlp_ab.py, H200, benchmarks/RESULTS.md,
// 2026-12-03): clusters were faster for every dense MLP (L2-resident down weights:
// -0.4 to -2.1 us) and for gated MLPs with one token tile (M <= 64: -0.3 to -1.7 us),
// but slower for gated MLPs streaming their down weights from DRAM over 2-4 splits at
// M = 65..384 (+0.4 to +3.7 us at M = 65, 100 and 200, GeGLU +0.7 at 384; -0.1 / -0.4
// at 128).
inline bool split_in_clusters(int64_t m, int64_t n_out, int64_t k) {
  if (SFM_SPLIT_IN_CLUSTERS != 1) return SFM_SPLIT_IN_CLUSTERS == 2;
  return m <= wgmma_gemm::kMaxWideTokens || l2_resident_weights(n_out, k);
}

// w_rows and k: the weight matrix ([w_rows, k]; for the down GEMM w_rows = N); warp_ok:
// M is within kMaxWarpTokens and the warp kernel takes the problem (warp_ok()); rs_ok:
// likewise for the register-sourced wgmma kernel (rs_ok()); sms: the device's
// multiprocessors (current_sms(); a parameter so that tests/test_dispatch_rules.py can
// check the choice on the CPU); gated_mlp: a GEMM of a gated MLP (its gate/up GEMM, or
// with gemm2 its down GEMM).
inline Kernel pick(int64_t m, GemmPath path, bool gemm2, int64_t w_rows, int64_t k,
                   bool warp_ok, bool rs_ok, int sms, bool gated_mlp = false) {
  const bool gated_gemm1 = gated_mlp && !gemm2;
  switch (path) {
    case GemmPath::kTensorCoreTma:
    case GemmPath::kTensorCoreTall128:
    case GemmPath::kTensorCoreTall192:
    case GemmPath::kTensorCoreTall64: return Kernel::kWgmma;
    case GemmPath::kWeightStream: return Kernel::kStream;
    case GemmPath::kWarpStream: return Kernel::kWarp;
    case GemmPath::kTensorCoreStream: return Kernel::kRegWgmma;
    case GemmPath::kTensorCoreSplitK: return gemm2 ? Kernel::kWgmmaSplitK : Kernel::kPortable;
    case GemmPath::kTensorCoreSplitKCluster:
      return gemm2 ? Kernel::kWgmmaSplitKCluster : Kernel::kPortable;
    case GemmPath::kTensorCoreSwapAB: return Kernel::kSwapAB;
    case GemmPath::kTensorCoreSwapABCluster:
      return gemm2 ? Kernel::kSwapABCluster : Kernel::kPortable;
    case GemmPath::kAuto: {
      const bool l2_resident = l2_resident_weights(w_rows, k);
      if (l2_resident) {
        if (SFM_WGMMA_SWAP_AB && ((gated_mlp && swap_gemm::l2_gated_takes(m, gemm2)) ||
                                  (!gated_gemm1 && swap_gemm::l2_mid_takes(m, gemm2, w_rows, k)))) {
          return swap_kernel(m, gemm2, w_rows, l2_resident);
        }
        if (rs_ok && rs_preferred(m, k)) return Kernel::kRegWgmma;
        if (warp_ok) return Kernel::kWarp;
      }
      // The swap-AB kernel (every token in one wgmma N tile) where swap_gemm::auto_takes
      // says it measured faster: mid-sized batches, and GeGLU-sized GEMMs from 1 token
      // (there ahead of the streaming kernel too).
      if (SFM_WGMMA_SWAP_AB && swap_gemm::auto_takes(m, gemm2, w_rows, k, l2_resident, sms, gated_mlp)) {
        return swap_kernel(m, gemm2, w_rows, l2_resident);
      }
      if (m <= kMaxStreamTokens && (SFM_STREAM_GATED_GEMM1 || !gated_gemm1)) {
        return Kernel::kStream;
      }
      if (gemm2 && SFM_WGMMA_SPLIT_K &&
          wgmma_gemm::split_k_factor(m, w_rows, k, sms) >= 2) {
        return split_in_clusters(m, w_rows, k) ? Kernel::kWgmmaSplitKCluster : Kernel::kWgmmaSplitK;
      }
      if (gemm2 && m <= kMaxStreamGemm2Tokens && (m <= 64 || w_rows <= 2048)) {
        return Kernel::kStream;
      }
      return Kernel::kWgmma;
    }
    default: return Kernel::kPortable;
  }
}

// Row pitch of the FP8 hidden state between an MLP's two GEMMs (0: packed), given the
// kernels picked for them. Where H is not a whole number of 128-byte K tiles (SigLIP's
// 4304), every packed hidden row straddles L2 lines, and the down GEMM's token tiles
// (57-67% of its operand bytes through L2 in the paired tall tiles of 192 or 128 weight
// rows, whose weight halves are multicast) read a fifth more sectors; so where the wgmma
// kernel writes the hidden and the wgmma kernel reads it, its rows are padded to a
// multiple of 128 bytes (the padding is never read: the TMA boxes past H are
// zero-filled). Whole MLPs against packed rows (scripts/mlp_ab.py, 15 rounds, H200,
// benchmarks/RESULTS.md, twenty-seventh session): 1152x4304 M = 1024 /
// 2048 / 4096 / 8192 -0.6 / +0.2 / -1.8 / -1.6 us, 1536x4304 -1.0 / -2.1 / -1.6 / -3.0
// (M = 769: -3.3); the down GEMM alone at M = 8192 77.5 -> 73.0 and 100.1 -> 93.8 us
// (torch.profiler, one call). SFM_PAD_HIDDEN 0: never.
#ifndef SFM_PAD_HIDDEN
#define SFM_PAD_HIDDEN 1
#endif
constexpr int64_t kHiddenRowAlign = wgmma_gemm::kBK;
// Whether packed hidden rows of h bytes straddle L2 lines (and padding applies at all).
inline bool hidden_rows_straddle(int64_t h) { return SFM_PAD_HIDDEN && h % kHiddenRowAlign != 0; }
inline int64_t padded_hidden_pitch(int64_t h, Kernel gemm1, Kernel gemm2) {
  if (!hidden_rows_straddle(h)) return 0;
  if (gemm1 != Kernel::kWgmma || gemm2 != Kernel::kWgmma) return 0;
  return (h + kHiddenRowAlign - 1) / kHiddenRowAlign * kHiddenRowAlign;
}

}  // namespace hopper
}  // namespace
}  // namespace static_fp8_mlp
