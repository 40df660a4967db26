// The Hopper backend: the wgmma/TMA GEMMs for batches large enough to fill the tensor
// cores, the portable mma.sync kernels (weights streamed as the wide operand) for
// decode-sized batches, where they stream weights closer to memory bandwidth.
#pragma once

#include "fp8_gemm_wgmma.cuh"
#include "portable_backend.cuh"

namespace static_fp8_mlp {
namespace {
namespace hopper {

// Up to 16 tokens the split-K weight-streaming kernels win; from 17 on the wgmma
// kernel is faster than the 64-token mma.sync tiles at every shape measured on H200
// (scripts/perf_probe.py; see benchmarks/NOTES.md).
constexpr int64_t kMinTokensForWgmma = 17;

inline bool use_wgmma(int64_t m, GemmPath path) {
  if (path == GemmPath::kTensorCoreTma) return true;
  if (path != GemmPath::kAuto) return false;
  return m >= kMinTokensForWgmma;
}

inline wgmma_gemm::WgmmaParams make_params(const Fp8GemmOperands& op, int64_t n_out, void* out,
                                           const void* bias, const float* hidden_scale) {
  wgmma_gemm::WgmmaParams p;
  p.m = static_cast<int>(op.m);
  p.k = static_cast<int>(op.k);
  p.n_out = static_cast<int>(n_out);
  p.out = out;
  p.epi = make_epilogue(op, bias, hidden_scale);
  return p;
}

inline cudaError_t gated_gemm1(const GatedGemm1Args& a, GemmPath path, cudaStream_t stream) {
  if (!use_wgmma(a.op.m, path)) return portable::gated_gemm1(a, path, stream);
  const auto p = make_params(a.op, a.op.n / 2, a.hidden, nullptr, a.hidden_scale);
  if (a.act == Activation::kSilu) {
    return wgmma_gemm::launch<EpilogueKind::kGatedToFp8, Activation::kSilu>(a.op.x, a.op.w, p,
                                                                           stream);
  }
  return wgmma_gemm::launch<EpilogueKind::kGatedToFp8, Activation::kGeluTanh>(a.op.x, a.op.w, p,
                                                                             stream);
}

inline cudaError_t dense_gemm1(const DenseGemm1Args& a, GemmPath path, cudaStream_t stream) {
  if (!use_wgmma(a.op.m, path)) return portable::dense_gemm1(a, path, stream);
  const auto p = make_params(a.op, a.op.n, a.hidden, a.bias, a.hidden_scale);
  return wgmma_gemm::launch<EpilogueKind::kBiasGeluToFp8, Activation::kGeluTanh>(a.op.x, a.op.w,
                                                                                p, stream);
}

inline cudaError_t gemm2(const Gemm2Args& a, GemmPath path, cudaStream_t stream) {
  if (!use_wgmma(a.op.m, path)) return portable::gemm2(a, path, stream);
  const auto p = make_params(a.op, a.op.n, a.out, a.bias, nullptr);
  return wgmma_gemm::launch<EpilogueKind::kBiasToBf16, Activation::kGeluTanh>(a.op.x, a.op.w, p,
                                                                             stream);
}

}  // namespace hopper
}  // namespace
}  // namespace static_fp8_mlp
