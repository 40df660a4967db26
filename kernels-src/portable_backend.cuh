// The portable backend: input quant plus the mma.sync GEMMs, dispatched by M.
// Included by one translation unit per architecture group (kernels-src/arch/*.cu),
// each of which registers it under the architectures nvcc compiled it for.
#pragma once

#include "backend_registry.h"
#include "fp8_gemm_mma.cuh"
#include "fp8_gemm_warp.cuh"
#include "input_quant.cuh"

// Internal linkage: every arch-group TU includes this file and must get its own copy
// (its own fatbin), never one merged by the linker with another group's.
namespace static_fp8_mlp {
namespace {
namespace portable {

// Tile shapes by batch size. Decode (few tokens) is bound by streaming the weights:
// small weight tiles (many CTAs), 16 tokens per CTA, a deep pipeline and split-K.
// Larger batches reuse each weight tile across more tokens.
using SmallM = mma_gemm::TileConfig<64, 16, 2, 2, 4>;
using MidM = mma_gemm::TileConfig<64, 64, 2, 2, 4>;
// sm_90+: the same warp tiles fed by TMA through a deeper ring (2 CTAs per SM).
// Measured on H200 (scripts/perf_probe.py): 512-byte K stages (longer runs per weight
// row) were slower than these 128-byte ones for every decode shape.
using SmallMTma = mma_gemm::TileConfig<64, 16, 2, 2, 8>;
using MidMTma = mma_gemm::TileConfig<64, 64, 2, 2, 6>;
using LargeM = mma_gemm::TileConfig<128, 128, 2, 4, 3>;

enum class Tile { kSmall, kMid, kLarge };

inline Tile pick_tile(int64_t m, GemmPath path) {
  switch (path) {
    case GemmPath::kSmallM: return Tile::kSmall;
    case GemmPath::kLargeM: return Tile::kLarge;
    default: break;
  }
  if (m <= 16) return Tile::kSmall;
  if (m <= 128) return Tile::kMid;
  return Tile::kLarge;
}

// Split-K factor: the largest power of two that keeps tiles * splits within one CTA
// per multiprocessor, at most 4, with at least 2 K tiles per split. Measured on H200
// (scripts/perf_probe.py, M = 1 and 16): splitting further, up to 2 CTAs per SM and
// clusters of 8, was slower for every shape (GeGLU 61 vs 55 us, SwiGLU 101 vs 82 us).
// Clusters need sm_90+.
template <typename Cfg>
int pick_splits(int64_t tiles, int64_t k) {
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || device_arch(dev).major < 9) return 1;
  const int64_t sms = sm_count(dev);
  const int64_t k_tiles = (k + Cfg::kBK - 1) / Cfg::kBK;
  int splits = 1;
  while (splits < 4 && tiles * splits * 2 <= sms && k_tiles / (2 * splits) >= 2) splits *= 2;
  return splits;
}

inline mma_gemm::GemmParams make_params(const Fp8GemmOperands& op, int64_t n_out, void* out,
                                        const void* bias, const float* hidden_scale) {
  mma_gemm::GemmParams p;
  p.x = op.x;
  p.w = op.w;
  p.m = static_cast<int>(op.m);
  p.k = static_cast<int>(op.k);
  p.n_out = static_cast<int>(n_out);
  p.out = out;
  p.epi = make_epilogue(op, bias, hidden_scale);
  return p;
}

inline bool has_tma() {
  int dev = 0;
  return cudaGetDevice(&dev) == cudaSuccess && device_arch(dev).major >= 9;
}

template <typename Cfg, EpilogueKind EPI, Activation ACT, bool TMA>
cudaError_t launch_split(const mma_gemm::GemmParams& p, cudaStream_t stream) {
  const int splits = TMA ? pick_splits<Cfg>(mma_gemm::tile_count<Cfg, EPI>(p), p.k) : 1;
  return mma_gemm::launch<Cfg, EPI, ACT, TMA>(p, splits, stream);
}

template <typename Cfg, typename CfgTma, EpilogueKind EPI, Activation ACT>
cudaError_t run_split(const mma_gemm::GemmParams& p, cudaStream_t stream) {
  if (!has_tma()) return launch_split<Cfg, EPI, ACT, false>(p, stream);
  return launch_split<CfgTma, EPI, ACT, true>(p, stream);
}

template <EpilogueKind EPI, Activation ACT>
cudaError_t run_tiled(const mma_gemm::GemmParams& p, GemmPath path, cudaStream_t stream) {
  switch (pick_tile(p.m, path)) {
    case Tile::kSmall: return run_split<SmallM, SmallMTma, EPI, ACT>(p, stream);
    case Tile::kMid: return run_split<MidM, MidMTma, EPI, ACT>(p, stream);
    default: return mma_gemm::launch<LargeM, EPI, ACT, false>(p, 1, stream);
  }
}

// Paths only the Hopper backend implements; forced here, they are refused.
inline bool hopper_only(GemmPath path) {
  return path == GemmPath::kTensorCoreTma || path == GemmPath::kWeightStream ||
         path == GemmPath::kTensorCoreSplitK || path == GemmPath::kTensorCoreTall128 ||
         path == GemmPath::kTensorCoreTall192 || path == GemmPath::kTensorCoreTall64 ||
         path == GemmPath::kTensorCoreStream || path == GemmPath::kTensorCoreSplitKCluster ||
         path == GemmPath::kTensorCoreSwapAB || path == GemmPath::kTensorCoreSwapABCluster;
}

inline cudaError_t gated_gemm1(const GatedGemm1Args& a, GemmPath path, cudaStream_t stream) {
  if (hopper_only(path)) return cudaErrorNotSupported;
  if (a.hidden_pitch != 0 || a.op.x_pitch != 0) return cudaErrorInvalidValue;
  if (path == GemmPath::kWarpStream) return warp_gemm::Gemms::gated_gemm1(a, stream);
  const auto p = make_params(a.op, a.op.n / 2, a.hidden, nullptr, a.hidden_scale);
  if (a.act == Activation::kSilu) {
    return run_tiled<EpilogueKind::kGatedToFp8, Activation::kSilu>(p, path, stream);
  }
  return run_tiled<EpilogueKind::kGatedToFp8, Activation::kGeluTanh>(p, path, stream);
}

inline cudaError_t dense_gemm1(const DenseGemm1Args& a, GemmPath path, cudaStream_t stream) {
  if (hopper_only(path)) return cudaErrorNotSupported;
  if (a.hidden_pitch != 0 || a.op.x_pitch != 0) return cudaErrorInvalidValue;
  if (path == GemmPath::kWarpStream) return warp_gemm::Gemms::dense_gemm1(a, stream);
  const auto p = make_params(a.op, a.op.n, a.hidden, a.bias, a.hidden_scale);
  return run_tiled<EpilogueKind::kBiasGeluToFp8, Activation::kGeluTanh>(p, path, stream);
}

inline int64_t gemm2_workspace_bytes(int64_t, int64_t, int64_t, bool, GemmPath) { return 0; }

// These kernels read and write packed rows only.
inline int64_t hidden_pitch(int64_t, int64_t, int64_t, int64_t, bool, GemmPath, GemmPath) {
  return 0;
}

inline cudaError_t gemm2(const Gemm2Args& a, GemmPath path, cudaStream_t stream) {
  if (hopper_only(path)) return cudaErrorNotSupported;
  if (a.op.x_pitch != 0) return cudaErrorInvalidValue;
  if (path == GemmPath::kWarpStream) return warp_gemm::Gemms::gemm2(a, stream);
  const auto p = make_params(a.op, a.op.n, a.out, a.bias, nullptr);
  return run_tiled<EpilogueKind::kBiasToBf16, Activation::kGeluTanh>(p, path, stream);
}

}  // namespace portable
}  // namespace
}  // namespace static_fp8_mlp

#define SFM_STRINGIFY_ARCHS_(...) #__VA_ARGS__
#define SFM_STRINGIFY_ARCHS(...) SFM_STRINGIFY_ARCHS_(__VA_ARGS__)

// Registers the portable backend for the architectures of the including TU.
#define SFM_REGISTER_PORTABLE_BACKEND(NAME)                                              \
  namespace {                                                                            \
  const bool registered_##NAME = ::static_fp8_mlp::register_backend({                   \
      #NAME,                                                                             \
      ::static_fp8_mlp::parse_arch_list(SFM_STRINGIFY_ARCHS(__CUDA_ARCH_LIST__)),        \
      &::static_fp8_mlp::input_quant::launch,                                            \
      &::static_fp8_mlp::portable::gated_gemm1,                                          \
      &::static_fp8_mlp::portable::dense_gemm1,                                          \
      &::static_fp8_mlp::portable::gemm2,                                                \
      &::static_fp8_mlp::portable::gemm2_workspace_bytes,                                \
      &::static_fp8_mlp::portable::hidden_pitch,                                         \
      /*priority=*/0});                                                                  \
  }
