// Hopper (9.0a): wgmma + TMA for large batches, portable kernels for small ones.
// Registered with a higher priority than the portable backend for the same chip.
#include "hopper_backend.cuh"

namespace {
const bool registered_hopper = ::static_fp8_mlp::register_backend({
    "hopper_sm90a",
    ::static_fp8_mlp::parse_arch_list(SFM_STRINGIFY_ARCHS(__CUDA_ARCH_LIST__)),
    &::static_fp8_mlp::input_quant::launch,
    &::static_fp8_mlp::hopper::gated_gemm1,
    &::static_fp8_mlp::hopper::dense_gemm1,
    &::static_fp8_mlp::hopper::gemm2,
    &::static_fp8_mlp::hopper::gemm2_workspace_bytes,
    &::static_fp8_mlp::hopper::hidden_pitch,
    /*priority=*/1});
}  // namespace
