// Op registration: schemas here must match registry/static_fp8_mlp_registry/contract.py.
#include <torch/library.h>

#include "registration.h"
#include "torch_binding.h"

TORCH_LIBRARY_EXPAND(TORCH_EXTENSION_NAME, ops) {
  ops.def(
      "channel_scale_quantize_fp8_static_bf16(Tensor! out, Tensor input, Tensor channel_scale, "
      "Tensor scale) -> ()");
  ops.impl("channel_scale_quantize_fp8_static_bf16", torch::kCUDA,
           &channel_scale_quantize_fp8_static_bf16);

  ops.def(
      "fp8_swiglu_mlp_bf16(Tensor! out, Tensor input, Tensor gate_up_weight, Tensor down_weight, "
      "Tensor input_scale, Tensor gate_up_weight_scale, Tensor hidden_scale, "
      "Tensor down_weight_scale) -> ()");
  ops.impl("fp8_swiglu_mlp_bf16", torch::kCUDA, &fp8_swiglu_mlp_bf16);

  ops.def(
      "fp8_geglu_mlp_bf16(Tensor! out, Tensor input, Tensor gate_up_weight, Tensor down_weight, "
      "Tensor input_scale, Tensor gate_up_weight_scale, Tensor hidden_scale, "
      "Tensor down_weight_scale) -> ()");
  ops.impl("fp8_geglu_mlp_bf16", torch::kCUDA, &fp8_geglu_mlp_bf16);

  ops.def(
      "fp8_gelu_mlp_bf16(Tensor! out, Tensor input, Tensor up_weight, Tensor up_bias, "
      "Tensor down_weight, Tensor down_bias, Tensor input_scale, Tensor up_weight_scale, "
      "Tensor hidden_scale, Tensor down_weight_scale) -> ()");
  ops.impl("fp8_gelu_mlp_bf16", torch::kCUDA, &fp8_gelu_mlp_bf16);

  ops.def(
      "gated_mlp_with_paths(Tensor! out, Tensor input, Tensor gate_up_weight, "
      "Tensor down_weight, Tensor input_scale, Tensor gate_up_weight_scale, "
      "Tensor hidden_scale, Tensor down_weight_scale, int activation, int gemm1_path, "
      "int gemm2_path) -> ()");
  ops.impl("gated_mlp_with_paths", torch::kCUDA, &gated_mlp_with_paths);

  ops.def(
      "gelu_mlp_with_paths(Tensor! out, Tensor input, Tensor up_weight, Tensor up_bias, "
      "Tensor down_weight, Tensor down_bias, Tensor input_scale, Tensor up_weight_scale, "
      "Tensor hidden_scale, Tensor down_weight_scale, int gemm1_path, int gemm2_path) -> ()");
  ops.impl("gelu_mlp_with_paths", torch::kCUDA, &gelu_mlp_with_paths);

  ops.def("covered_archs() -> str", &covered_archs);
}

REGISTER_EXTENSION(TORCH_EXTENSION_NAME)
