// What happens to a GEMM accumulator before it is stored: the fp32 math of
// CONTRACT.md applied per element (scales, bias, activation, FP8 re-quantisation).
#pragma once

#include <cuda_bf16.h>

#include "backend_registry.h"
#include "common.cuh"
#include "fp8_convert.cuh"

namespace static_fp8_mlp {

// Exactly the formulas torch uses in fp32 (F.silu, F.gelu(approximate="tanh")), with
// the accurate expf/tanhf rather than intrinsics: the hidden FP8 rounding is sensitive
// to the last bits.
SFM_DEVICE float silu(float x) { return x / (1.0f + expf(-x)); }

SFM_DEVICE float gelu_tanh(float x) {
  constexpr float kBeta = 0.7978845608028654f;  // sqrt(2 / pi)
  constexpr float kKappa = 0.044715f;
  const float inner = kBeta * (x + kKappa * x * x * x);
  return 0.5f * x * (1.0f + tanhf(inner));
}

template <Activation ACT>
SFM_DEVICE float activate(float x) {
  if constexpr (ACT == Activation::kSilu) {
    return silu(x);
  } else {
    return gelu_tanh(x);
  }
}

enum class EpilogueKind : int {
  kGatedToFp8 = 0,      // GEMM1 of a gated MLP: act(gate) * up -> FP8 hidden
  kBiasGeluToFp8 = 1,   // GEMM1 of a dense MLP: gelu(acc + bias) -> FP8 hidden
  kBiasToBf16 = 2,      // GEMM2: acc (+ bias) -> bf16 output
};

// Everything an epilogue reads, passed by value to the kernel.
struct EpilogueParams {
  const float* x_scale;
  const float* w_scale;
  bool w_scale_per_row;
  const __nv_bfloat16* bias;  // may be null for kBiasToBf16
  const float* hidden_scale;  // FP8 epilogues only
};

// Dequantisation multiplier of weight row `row` times the activation scale.
SFM_DEVICE float row_scale(const EpilogueParams& p, float x_scale, int64_t row) {
  return x_scale * (p.w_scale_per_row ? __ldg(p.w_scale + row) : __ldg(p.w_scale));
}

}  // namespace static_fp8_mlp
