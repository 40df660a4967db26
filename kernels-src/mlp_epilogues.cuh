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
// sigmoid(t) = 1 / (1 + 2^(-t log2 e)) with the hardware approximations ex2.approx.ftz
// and rcp.approx.ftz: a few ulp from the exact value (far below one FP8 code, so
// hidden-quantisation flips stay rare) and a handful of instructions, where tanhf, IEEE
// division or even __frcp_rn (a slow-path branch per call) made the GEMM epilogues a
// large share of the prefill time. Flushing denormals cannot matter here (1 + 2^y >= 1).
// Saturates cleanly: 2^y overflow gives rcp(inf) = 0, so x -> -0 for very negative x.
SFM_DEVICE float fast_exp2(float y) {
  float r;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(y));
  return r;
}

constexpr float kLog2e = 1.4426950408889634f;

// x * sigmoid(t) given y = -t * log2(e).
SFM_DEVICE float x_sigmoid_log2(float x, float y) { return x * fast_rcp(1.0f + fast_exp2(y)); }

SFM_DEVICE float silu(float x) { return x_sigmoid_log2(x, x * -kLog2e); }

SFM_DEVICE float gelu_tanh(float x) {
  constexpr float kTwoBeta = 2.0f * 0.7978845608028654f;  // 2 sqrt(2 / pi)
  constexpr float kKappa = 0.044715f;
  // -2 beta log2(e) (x + kappa x^3) = x (c1 + c3 x^2)
  constexpr float kC1 = -kTwoBeta * kLog2e;
  constexpr float kC3 = -kTwoBeta * kKappa * kLog2e;
  return x_sigmoid_log2(x, x * fmaf(kC3, x * x, kC1));
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

// Where the dequantisation multiplier of weight row `row` is (per row, or the per-tensor
// one), and its value. Epilogues that load it early multiply by the activation scale later.
SFM_DEVICE const float* weight_scale_ptr(const EpilogueParams& p, int64_t row) {
  return p.w_scale + (p.w_scale_per_row ? row : 0);
}
SFM_DEVICE float weight_scale(const EpilogueParams& p, int64_t row) {
  return __ldg(weight_scale_ptr(p, row));
}

// weight_scale times the activation scale: the full dequantisation multiplier.
SFM_DEVICE float row_scale(const EpilogueParams& p, float x_scale, int64_t row) {
  return x_scale * weight_scale(p, row);
}

// row_scale with the per-tensor product loaded once (hot epilogues call it per column).
struct RowScales {
  const float* w_scale;
  float x_scale;
  float uniform;  // x_scale * w_scale when the weight scale is per tensor
  bool per_row;
  SFM_DEVICE float operator()(int64_t row) const {
    return per_row ? x_scale * __ldg(w_scale + row) : uniform;
  }
};

SFM_DEVICE RowScales make_row_scales(const EpilogueParams& p) {
  const float x_scale = __ldg(p.x_scale);
  return {p.w_scale, x_scale, p.w_scale_per_row ? 0.0f : x_scale * __ldg(p.w_scale),
          p.w_scale_per_row};
}

// The operand fields of the register-streaming kernels' parameter structs (warp and
// register-sourced wgmma: x, w, m, k, n_out, k_steps, out, epi), with K in steps of
// `step_bytes`; sizes narrowed to int as the kernels take them.
template <typename Params>
Params register_stream_params(const uint8_t* x, const uint8_t* w, int64_t m, int64_t k,
                              int64_t n_out, int step_bytes, void* out,
                              const EpilogueParams& epi) {
  Params p;
  p.x = x;
  p.w = w;
  p.m = static_cast<int>(m);
  p.k = static_cast<int>(k);
  p.n_out = static_cast<int>(n_out);
  p.k_steps = static_cast<int>(host_ceil_div(k, step_bytes));
  p.out = out;
  p.epi = epi;
  return p;
}

// The three GEMMs of the MLPs for a kernel family whose Launch::run<EPI, ACT>(x, w, m, k,
// n_out, out, epilogue, dev, stream) computes out[m, n_out] = epilogue(x w^T) on device
// `dev` (the gated GEMM1 reads 2 n_out weight rows: gate rows, then up rows). Empty
// problems return here, before the device is looked up.
template <typename Launch>
struct MlpGemms {
  static cudaError_t gated_gemm1(const GatedGemm1Args& a, cudaStream_t stream) {
    const auto epi = make_epilogue(a.op, nullptr, a.hidden_scale);
    const int64_t h = a.op.n / 2;
    return a.act == Activation::kSilu
               ? run<EpilogueKind::kGatedToFp8, Activation::kSilu>(a.op, h, a.hidden, epi, stream)
               : run<EpilogueKind::kGatedToFp8, Activation::kGeluTanh>(a.op, h, a.hidden, epi,
                                                                       stream);
  }
  static cudaError_t dense_gemm1(const DenseGemm1Args& a, cudaStream_t stream) {
    return run<EpilogueKind::kBiasGeluToFp8, Activation::kGeluTanh>(
        a.op, a.op.n, a.hidden, make_epilogue(a.op, a.bias, a.hidden_scale), stream);
  }
  static cudaError_t gemm2(const Gemm2Args& a, cudaStream_t stream) {
    return run<EpilogueKind::kBiasToBf16, Activation::kGeluTanh>(
        a.op, a.op.n, a.out, make_epilogue(a.op, a.bias, nullptr), stream);
  }

 private:
  template <EpilogueKind EPI, Activation ACT>
  static cudaError_t run(const Fp8GemmOperands& op, int64_t n_out, void* out,
                         const EpilogueParams& epi, cudaStream_t stream) {
    if (op.m == 0 || n_out == 0) return cudaSuccess;
    int dev = 0;
    const cudaError_t e = cudaGetDevice(&dev);
    if (e != cudaSuccess) return e;
    return Launch::template run<EPI, ACT>(op.x, op.w, op.m, op.k, n_out, out, epi, dev, stream);
  }
};

}  // namespace static_fp8_mlp
