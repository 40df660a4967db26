#pragma once

#include <torch/torch.h>

// The v1 endpoints (CONTRACT.md). Each writes its result into `out`.
void channel_scale_quantize_fp8_static_bf16(torch::Tensor& out, const torch::Tensor& input,
                                            const torch::Tensor& channel_scale,
                                            const torch::Tensor& scale);

void fp8_swiglu_mlp_bf16(torch::Tensor& out, const torch::Tensor& input,
                         const torch::Tensor& gate_up_weight, const torch::Tensor& down_weight,
                         const torch::Tensor& input_scale,
                         const torch::Tensor& gate_up_weight_scale,
                         const torch::Tensor& hidden_scale,
                         const torch::Tensor& down_weight_scale);

void fp8_geglu_mlp_bf16(torch::Tensor& out, const torch::Tensor& input,
                        const torch::Tensor& gate_up_weight, const torch::Tensor& down_weight,
                        const torch::Tensor& input_scale,
                        const torch::Tensor& gate_up_weight_scale,
                        const torch::Tensor& hidden_scale, const torch::Tensor& down_weight_scale);

void fp8_gelu_mlp_bf16(torch::Tensor& out, const torch::Tensor& input,
                       const torch::Tensor& up_weight, const torch::Tensor& up_bias,
                       const torch::Tensor& down_weight, const torch::Tensor& down_bias,
                       const torch::Tensor& input_scale, const torch::Tensor& up_weight_scale,
                       const torch::Tensor& hidden_scale, const torch::Tensor& down_weight_scale);

// Extra (non-contract) ops: the same MLPs with the GEMM path forced, so tests can
// cover every path the dispatcher may take; and what this build covers.
void gated_mlp_with_paths(torch::Tensor& out, const torch::Tensor& input,
                          const torch::Tensor& gate_up_weight, const torch::Tensor& down_weight,
                          const torch::Tensor& input_scale,
                          const torch::Tensor& gate_up_weight_scale,
                          const torch::Tensor& hidden_scale,
                          const torch::Tensor& down_weight_scale, int64_t activation,
                          int64_t gemm1_path, int64_t gemm2_path);

void gelu_mlp_with_paths(torch::Tensor& out, const torch::Tensor& input,
                         const torch::Tensor& up_weight, const torch::Tensor& up_bias,
                         const torch::Tensor& down_weight, const torch::Tensor& down_bias,
                         const torch::Tensor& input_scale, const torch::Tensor& up_weight_scale,
                         const torch::Tensor& hidden_scale,
                         const torch::Tensor& down_weight_scale, int64_t gemm1_path,
                         int64_t gemm2_path);

std::string covered_archs();
