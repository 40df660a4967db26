// What happens to a GEMM accumulator before it is stored: the fp32 math of
// CONTRACT.md applied per element (scales, bias, activation, FP8 re-quantisation).
#pragma once

#include <cuda_bf16.h>

#include "backend_registry.h"
#include "common.cuh"
#include "fp8_convert.cuh"

namespace static_fp8_mlp {

// Both activations as x * sigmoid(t): silu(x) = x * sigmoid(x) and
// gelu_tanh(x) = 0.5 x (1 + tanh(u)) = x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3).
// __expf and the reciprocal are accurate to a few ulp (far below one FP8 code, so
// hidden-quantisation flips stay rare) and much cheaper than tanhf and IEEE division,
// which made the GEMM1 epilogue a visible share of the prefill time. Saturates
// cleanly: exp overflow gives rcp(inf) = 0, so x -> -0 for very negative inputs.
SFM_DEVICE float x_sigmoid(float x, float t) { return x * __frcp_rn(1.0f + __expf(-t)); }

SFM_DEVICE float silu(float x) { return x_sigmoid(x, x); }

SFM_DEVICE float gelu_tanh(float x) {
  constexpr float kTwoBeta = 2.0f * 0.7978845608028654f;  // 2 sqrt(2 / pi)
  constexpr float kKappa = 0.044715f;
  return x_sigmoid(x, kTwoBeta * (x + kKappa * x * x * x));
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

// The epilogue's view of a GEMM's operands.
inline EpilogueParams make_epilogue(const Fp8GemmOperands& op, const void* bias,
                                    const float* hidden_scale) {
  EpilogueParams e;
  e.x_scale = op.x_scale;
  e.w_scale = op.w_scale;
  e.w_scale_per_row = op.w_scale_per_row;
  e.bias = static_cast<const __nv_bfloat16*>(bias);
  e.hidden_scale = hidden_scale;
  return e;
}

// 1 / hidden_scale, so the epilogue multiplies instead of dividing per element.
SFM_DEVICE float inverse_hidden_scale(const EpilogueParams& p) {
  return __frcp_rn(__ldg(p.hidden_scale));
}

// Dequantisation multiplier of weight row `row` times the activation scale.
SFM_DEVICE float row_scale(const EpilogueParams& p, float x_scale, int64_t row) {
  return x_scale * (p.w_scale_per_row ? __ldg(p.w_scale + row) : __ldg(p.w_scale));
}

}  // namespace static_fp8_mlp
