// The portable backend: input quant plus the mma.sync GEMMs, dispatched by M.
// Included by one translation unit per architecture group (kernels-src/arch/*.cu),
// each of which registers it under the architectures nvcc compiled it for.
#pragma once

#include "backend_registry.h"
#include "fp8_gemm_mma.cuh"
#include "input_quant.cuh"

// Internal linkage: every arch-group TU includes this file and must get its own copy
// (its own fatbin), never one merged by the linker with another group's.
namespace static_fp8_mlp {
namespace {
namespace portable {

// Tile shapes by batch size. Decode (few tokens) is bound by streaming the weights:
// 16 tokens per CTA and a deep pipeline. Larger batches reuse each weight tile across
// more tokens.
using SmallM = mma_gemm::TileConfig<128, 16, 4, 1, 4>;
using MidM = mma_gemm::TileConfig<128, 64, 4, 1, 4>;
using LargeM = mma_gemm::TileConfig<128, 128, 2, 4, 3>;

enum class Tile { kSmall, kMid, kLarge };

inline Tile pick_tile(int64_t m, GemmPath path) {
  switch (path) {
    case GemmPath::kSmallM: return Tile::kSmall;
    case GemmPath::kLargeM: return Tile::kLarge;
    default: break;
  }
  if (m <= 16) return Tile::kSmall;
  if (m <= 64) return Tile::kMid;
  return Tile::kLarge;
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
  p.epi.x_scale = op.x_scale;
  p.epi.w_scale = op.w_scale;
  p.epi.w_scale_per_row = op.w_scale_per_row;
  p.epi.bias = static_cast<const __nv_bfloat16*>(bias);
  p.epi.hidden_scale = hidden_scale;
  return p;
}

template <EpilogueKind EPI, Activation ACT>
cudaError_t run_tiled(const mma_gemm::GemmParams& p, GemmPath path, cudaStream_t stream) {
  switch (pick_tile(p.m, path)) {
    case Tile::kSmall: return mma_gemm::launch<SmallM, EPI, ACT>(p, stream);
    case Tile::kMid: return mma_gemm::launch<MidM, EPI, ACT>(p, stream);
    default: return mma_gemm::launch<LargeM, EPI, ACT>(p, stream);
  }
}

inline cudaError_t gated_gemm1(const GatedGemm1Args& a, GemmPath path, cudaStream_t stream) {
  if (path == GemmPath::kTensorCoreTma) return cudaErrorNotSupported;
  const auto p = make_params(a.op, a.op.n / 2, a.hidden, nullptr, a.hidden_scale);
  if (a.act == Activation::kSilu) {
    return run_tiled<EpilogueKind::kGatedToFp8, Activation::kSilu>(p, path, stream);
  }
  return run_tiled<EpilogueKind::kGatedToFp8, Activation::kGeluTanh>(p, path, stream);
}

inline cudaError_t dense_gemm1(const DenseGemm1Args& a, GemmPath path, cudaStream_t stream) {
  if (path == GemmPath::kTensorCoreTma) return cudaErrorNotSupported;
  const auto p = make_params(a.op, a.op.n, a.hidden, a.bias, a.hidden_scale);
  return run_tiled<EpilogueKind::kBiasGeluToFp8, Activation::kGeluTanh>(p, path, stream);
}

inline cudaError_t gemm2(const Gemm2Args& a, GemmPath path, cudaStream_t stream) {
  if (path == GemmPath::kTensorCoreTma) return cudaErrorNotSupported;
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
      /*priority=*/0});                                                                  \
  }
