// Host side of the endpoints: argument checks (messages name the argument and what
// was expected), device/stream selection, backend choice, launches. No host
// synchronisation and no allocation other than through PyTorch's caching allocator,
// so every call can be captured in a CUDA graph.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/torch.h>

#include <string>

#include "backend_registry.h"
#include "torch_binding.h"

namespace sfm = static_fp8_mlp;

namespace {

constexpr int64_t kAlign = 16;  // FP8 tiles move 16-byte chunks

void check_device_tensor(const torch::Tensor& t, const char* name, at::ScalarType dtype,
                         const torch::Tensor& like) {
  TORCH_CHECK(t.is_cuda(), "static_fp8_mlp: `", name, "` must be a CUDA tensor, got device ",
              t.device());
  TORCH_CHECK(t.device() == like.device(), "static_fp8_mlp: `", name,
              "` must be on the same device as `input` (", like.device(), "), got ", t.device());
  TORCH_CHECK(t.scalar_type() == dtype, "static_fp8_mlp: `", name, "` must have dtype ",
              c10::toString(dtype), ", got ", c10::toString(t.scalar_type()));
}

void check_aligned(const torch::Tensor& t, const char* name) {
  TORCH_CHECK(reinterpret_cast<uintptr_t>(t.data_ptr()) % kAlign == 0, "static_fp8_mlp: `",
              name, "` data must be 16-byte aligned (got a tensor at offset ",
              t.storage_offset(), " elements into its storage)");
}

void check_scalar_scale(const torch::Tensor& s, const char* name, const torch::Tensor& like) {
  check_device_tensor(s, name, at::kFloat, like);
  TORCH_CHECK(s.numel() == 1 && s.dim() <= 1, "static_fp8_mlp: `", name,
              "` must be a one-element fp32 tensor (shape [] or [1]), got shape ", s.sizes());
}

// One element, or one per weight row ([rows]).
bool check_weight_scale(const torch::Tensor& s, const char* name, int64_t rows,
                        const torch::Tensor& like) {
  check_device_tensor(s, name, at::kFloat, like);
  if (s.numel() == 1 && s.dim() <= 1) return false;
  TORCH_CHECK(s.dim() == 1 && s.size(0) == rows, "static_fp8_mlp: `", name,
              "` must have one element or shape [", rows, "] (one per weight row), got shape ",
              s.sizes());
  TORCH_CHECK(s.is_contiguous(), "static_fp8_mlp: `", name, "` must be contiguous");
  return true;
}

void check_weight(const torch::Tensor& w, const char* name, int64_t rows, int64_t cols,
                  const torch::Tensor& like, const char* rows_what, const char* cols_what) {
  check_device_tensor(w, name, at::kFloat8_e4m3fn, like);
  TORCH_CHECK(w.dim() == 2 && w.size(0) == rows && w.size(1) == cols, "static_fp8_mlp: `", name,
              "` must have shape [", rows, ", ", cols, "] ([", rows_what, ", ", cols_what,
              "]), got ", w.sizes());
  TORCH_CHECK(w.is_contiguous(), "static_fp8_mlp: `", name, "` must be contiguous (row-major)");
  check_aligned(w, name);
}

void check_multiple_of_16(int64_t v, const char* what) {
  TORCH_CHECK(v % 16 == 0, "static_fp8_mlp: ", what,
              " must be a multiple of 16 (16-byte FP8 rows), got ", v);
}

struct Problem {
  int64_t m;
  int64_t k;
};

// input: fp8 [..., K], contiguous; returns M and K.
Problem check_fp8_input(const torch::Tensor& input) {
  TORCH_CHECK(input.is_cuda(), "static_fp8_mlp: `input` must be a CUDA tensor, got device ",
              input.device());
  TORCH_CHECK(input.scalar_type() == at::kFloat8_e4m3fn,
              "static_fp8_mlp: `input` must have dtype Float8_e4m3fn, got ",
              c10::toString(input.scalar_type()));
  TORCH_CHECK(input.dim() >= 1, "static_fp8_mlp: `input` must have at least one dimension");
  TORCH_CHECK(input.is_contiguous(), "static_fp8_mlp: `input` must be contiguous");
  const int64_t k = input.size(-1);
  TORCH_CHECK(k > 0, "static_fp8_mlp: `input` must have a non-empty last dimension");
  const int64_t m = input.numel() / k;
  TORCH_CHECK(m < (int64_t(1) << 31), "static_fp8_mlp: too many rows in `input`: ", m);
  if (m > 0) check_aligned(input, "input");
  return {m, k};
}

void check_out(const torch::Tensor& out, const torch::Tensor& input, int64_t m, int64_t n,
               at::ScalarType dtype) {
  check_device_tensor(out, "out", dtype, input);
  TORCH_CHECK(out.is_contiguous(), "static_fp8_mlp: `out` must be contiguous");
  TORCH_CHECK(out.numel() == m * n && out.dim() >= 1 && out.size(-1) == n,
              "static_fp8_mlp: `out` must hold [M, ", n, "] = ", m * n, " elements with last dim ",
              n, ", got shape ", out.sizes());
  if (m > 0) check_aligned(out, "out");
}

const sfm::KernelBackend& backend_for(const torch::Tensor& t) {
  const sfm::DeviceArch arch = sfm::device_arch(t.device().index());
  const sfm::KernelBackend* b = sfm::find_backend(arch.major, arch.minor);
  TORCH_CHECK(b != nullptr, "static_fp8_mlp: this build has no kernels for compute capability ",
              arch.major, ".", arch.minor, " (device ", t.device(), "); it covers: ",
              sfm::covered_archs(),
              ". Use a build for this architecture or fall back to the unfused module.");
  return *b;
}

void check_launch(cudaError_t e, const char* what) {
  TORCH_CHECK(e == cudaSuccess, "static_fp8_mlp: launching ", what, " failed: ",
              cudaGetErrorString(e));
}

sfm::GemmPath to_path(int64_t p, const char* name) {
  TORCH_CHECK(p >= 0 && p <= 13, "static_fp8_mlp: `", name, "` must be 0 (auto), 1 (small-M), ",
              "2 (large-M), 3 (tensor-core TMA), 4 (weight stream), 5 (tensor-core split-K), "
              "6 (tensor-core TMA, tall 128-row tiles), 7 (tall 192-row tiles), 8 (warp "
              "stream), 9 (tensor-core stream), 10 (tall 64-row tiles), 11 (tensor-core "
              "split-K reduced in clusters), 12 (tensor-core swap-AB) or 13 (tensor-core swap-AB, "
              "down GEMM split-K reduced in clusters), got ", p);
  return static_cast<sfm::GemmPath>(p);
}

// x [M, K] (M given: x may carry leading dims) times w [rows, K]^T, as the backends see it.
sfm::Fp8GemmOperands gemm_operands(const torch::Tensor& x, int64_t m, const torch::Tensor& w,
                                   const torch::Tensor& x_scale, const torch::Tensor& w_scale,
                                   bool w_scale_per_row) {
  return {static_cast<const uint8_t*>(x.data_ptr()), static_cast<const uint8_t*>(w.data_ptr()),
          m, w.size(0), w.size(1), x_scale.data_ptr<float>(), w_scale.data_ptr<float>(),
          w_scale_per_row};
}

// One bf16 value per row of something: a contiguous [length] vector.
void check_vector(const torch::Tensor& t, const char* name, int64_t length,
                  const torch::Tensor& like, const char* what) {
  check_device_tensor(t, name, at::kBFloat16, like);
  TORCH_CHECK(t.dim() == 1 && t.size(0) == length && t.is_contiguous(), "static_fp8_mlp: `", name,
              "` must be a contiguous bf16 tensor of shape [", length, "] (", what, "), got ",
              t.sizes());
}

// The [m, h] FP8 hidden state between an MLP's GEMMs, with the row pitch the backend asks
// for (KernelBackend::hidden_pitch; 0: packed): the pitch and the [m, pitch or h] buffer.
struct Hidden {
  int64_t pitch;
  torch::Tensor buffer;
};
Hidden make_hidden(const sfm::KernelBackend& backend, const torch::Tensor& input, int64_t m,
                   int64_t k, int64_t h, int64_t n, bool gated, sfm::GemmPath path1,
                   sfm::GemmPath path2) {
  const int64_t pitch = backend.hidden_pitch(m, k, h, n, gated, path1, path2);
  TORCH_CHECK(pitch == 0 || (pitch >= h && pitch % 16 == 0),
              "static_fp8_mlp: internal error: hidden row pitch ", pitch, " for H = ", h);
  return {pitch, at::empty({m, pitch != 0 ? pitch : h}, input.options())};
}

// out[M, N] = bf16(hidden * hidden_scale @ (down_weight * down_weight_scale)^T + bias);
// gated: the down GEMM of a gated MLP (its kernel may be picked differently).
void run_down_gemm(const sfm::KernelBackend& backend, const Hidden& hidden,
                   const torch::Tensor& down_weight, const torch::Tensor& hidden_scale,
                   const torch::Tensor& down_weight_scale, bool per_row, const void* bias,
                   bool gated, torch::Tensor& out, sfm::GemmPath path, cudaStream_t stream) {
  sfm::Gemm2Args g2{};
  g2.op = gemm_operands(hidden.buffer, hidden.buffer.size(0), down_weight, hidden_scale,
                        down_weight_scale, per_row);
  g2.op.x_pitch = hidden.pitch;
  g2.bias = bias;
  g2.gated = gated;
  g2.out = out.data_ptr();
  // Scratch from the caching allocator: stream-ordered, so reuse by a later call on this
  // stream is safe, and it comes from the graph's private pool under capture.
  const int64_t ws_bytes = backend.gemm2_workspace_bytes(g2.op.m, g2.op.n, g2.op.k, gated, path);
  torch::Tensor workspace;
  if (ws_bytes > 0) {
    workspace = torch::empty({(ws_bytes + 3) / 4}, out.options().dtype(at::kFloat));
    g2.workspace = workspace.data_ptr<float>();
    g2.workspace_bytes = ws_bytes;
  }
  check_launch(backend.gemm2(g2, path, stream), "the down GEMM");
}

void gated_mlp(torch::Tensor& out, const torch::Tensor& input, const torch::Tensor& gate_up_weight,
               const torch::Tensor& down_weight, const torch::Tensor& input_scale,
               const torch::Tensor& gate_up_weight_scale, const torch::Tensor& hidden_scale,
               const torch::Tensor& down_weight_scale, sfm::Activation act,
               sfm::GemmPath path1, sfm::GemmPath path2) {
  const Problem pr = check_fp8_input(input);
  TORCH_CHECK(gate_up_weight.dim() == 2 && gate_up_weight.size(0) % 2 == 0,
              "static_fp8_mlp: `gate_up_weight` must have shape [2H, K] (gate rows then up "
              "rows), got ", gate_up_weight.sizes());
  const int64_t h = gate_up_weight.size(0) / 2;
  TORCH_CHECK(down_weight.dim() == 2, "static_fp8_mlp: `down_weight` must have shape [N, H], got ",
              down_weight.sizes());
  const int64_t n = down_weight.size(0);
  check_weight(gate_up_weight, "gate_up_weight", 2 * h, pr.k, input, "2H", "K");
  check_weight(down_weight, "down_weight", n, h, input, "N", "H");
  check_multiple_of_16(pr.k, "K (input.size(-1))");
  check_multiple_of_16(h, "H (gate_up_weight.size(0) / 2)");
  check_multiple_of_16(n, "N (down_weight.size(0))");
  check_scalar_scale(input_scale, "input_scale", input);
  check_scalar_scale(hidden_scale, "hidden_scale", input);
  const bool gu_rows = check_weight_scale(gate_up_weight_scale, "gate_up_weight_scale", 2 * h, input);
  const bool d_rows = check_weight_scale(down_weight_scale, "down_weight_scale", n, input);
  check_out(out, input, pr.m, n, at::kBFloat16);

  const c10::cuda::CUDAGuard guard(input.device());
  const sfm::KernelBackend& backend = backend_for(input);
  if (pr.m == 0) return;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(input.device().index());
  const Hidden hidden = make_hidden(backend, input, pr.m, pr.k, h, n, /*gated=*/true, path1, path2);

  sfm::GatedGemm1Args g1{};
  g1.op = gemm_operands(input, pr.m, gate_up_weight, input_scale, gate_up_weight_scale, gu_rows);
  g1.act = act;
  g1.hidden_scale = hidden_scale.data_ptr<float>();
  g1.hidden = static_cast<uint8_t*>(hidden.buffer.data_ptr());
  g1.hidden_pitch = hidden.pitch;
  check_launch(backend.gated_gemm1(g1, path1, stream), "the gate/up GEMM");

  run_down_gemm(backend, hidden, down_weight, hidden_scale, down_weight_scale, d_rows,
                nullptr, /*gated=*/true, out, path2, stream);
}

void gelu_mlp(torch::Tensor& out, const torch::Tensor& input, const torch::Tensor& up_weight,
              const torch::Tensor& up_bias, const torch::Tensor& down_weight,
              const torch::Tensor& down_bias, const torch::Tensor& input_scale,
              const torch::Tensor& up_weight_scale, const torch::Tensor& hidden_scale,
              const torch::Tensor& down_weight_scale, sfm::GemmPath path1, sfm::GemmPath path2) {
  const Problem pr = check_fp8_input(input);
  TORCH_CHECK(up_weight.dim() == 2, "static_fp8_mlp: `up_weight` must have shape [H, K], got ",
              up_weight.sizes());
  TORCH_CHECK(down_weight.dim() == 2, "static_fp8_mlp: `down_weight` must have shape [N, H], got ",
              down_weight.sizes());
  const int64_t h = up_weight.size(0);
  const int64_t n = down_weight.size(0);
  check_weight(up_weight, "up_weight", h, pr.k, input, "H", "K");
  check_weight(down_weight, "down_weight", n, h, input, "N", "H");
  check_multiple_of_16(pr.k, "K (input.size(-1))");
  check_multiple_of_16(h, "H (up_weight.size(0))");
  check_multiple_of_16(n, "N (down_weight.size(0))");
  check_vector(up_bias, "up_bias", h, input, "H");
  check_vector(down_bias, "down_bias", n, input, "N");
  check_scalar_scale(input_scale, "input_scale", input);
  check_scalar_scale(hidden_scale, "hidden_scale", input);
  const bool up_rows = check_weight_scale(up_weight_scale, "up_weight_scale", h, input);
  const bool d_rows = check_weight_scale(down_weight_scale, "down_weight_scale", n, input);
  check_out(out, input, pr.m, n, at::kBFloat16);

  const c10::cuda::CUDAGuard guard(input.device());
  const sfm::KernelBackend& backend = backend_for(input);
  if (pr.m == 0) return;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(input.device().index());
  const Hidden hidden = make_hidden(backend, input, pr.m, pr.k, h, n, /*gated=*/false, path1, path2);

  sfm::DenseGemm1Args g1{};
  g1.op = gemm_operands(input, pr.m, up_weight, input_scale, up_weight_scale, up_rows);
  g1.bias = up_bias.data_ptr();
  g1.hidden_scale = hidden_scale.data_ptr<float>();
  g1.hidden = static_cast<uint8_t*>(hidden.buffer.data_ptr());
  g1.hidden_pitch = hidden.pitch;
  check_launch(backend.dense_gemm1(g1, path1, stream), "the up GEMM");

  run_down_gemm(backend, hidden, down_weight, hidden_scale, down_weight_scale, d_rows,
                down_bias.data_ptr(), /*gated=*/false, out, path2, stream);
}

}  // namespace

void channel_scale_quantize_fp8_static_bf16(torch::Tensor& out, const torch::Tensor& input,
                                            const torch::Tensor& channel_scale,
                                            const torch::Tensor& scale) {
  TORCH_CHECK(input.is_cuda(), "static_fp8_mlp: `input` must be a CUDA tensor, got device ",
              input.device());
  TORCH_CHECK(input.scalar_type() == at::kBFloat16,
              "static_fp8_mlp: `input` must have dtype BFloat16, got ",
              c10::toString(input.scalar_type()));
  TORCH_CHECK(input.dim() >= 1, "static_fp8_mlp: `input` must have at least one dimension");
  const int64_t k = input.size(-1);
  check_vector(channel_scale, "channel_scale", k, input, "input.size(-1)");
  check_scalar_scale(scale, "scale", input);
  const int64_t m = k == 0 ? 0 : input.numel() / k;
  check_out(out, input, m, k, at::kFloat8_e4m3fn);

  const c10::cuda::CUDAGuard guard(input.device());
  const sfm::KernelBackend& backend = backend_for(input);
  if (m == 0) return;
  // Rows must be evenly strided: a 2-D view with unit stride along K.
  torch::Tensor rows = input.reshape({m, k});
  if (rows.stride(1) != 1 || (m > 1 && rows.stride(0) < k)) rows = rows.contiguous();
  sfm::InputQuantArgs a{};
  a.input = rows.data_ptr();
  a.row_stride = m > 1 ? rows.stride(0) : k;
  a.channel_scale = channel_scale.data_ptr();
  a.scale = scale.data_ptr<float>();
  a.out = static_cast<uint8_t*>(out.data_ptr());
  a.m = m;
  a.k = k;
  check_launch(backend.input_quant(a, c10::cuda::getCurrentCUDAStream(input.device().index())),
               "input quantisation");
}

void fp8_swiglu_mlp_bf16(torch::Tensor& out, const torch::Tensor& input,
                         const torch::Tensor& gate_up_weight, const torch::Tensor& down_weight,
                         const torch::Tensor& input_scale,
                         const torch::Tensor& gate_up_weight_scale,
                         const torch::Tensor& hidden_scale,
                         const torch::Tensor& down_weight_scale) {
  gated_mlp(out, input, gate_up_weight, down_weight, input_scale, gate_up_weight_scale,
            hidden_scale, down_weight_scale, sfm::Activation::kSilu, sfm::GemmPath::kAuto,
            sfm::GemmPath::kAuto);
}

void fp8_geglu_mlp_bf16(torch::Tensor& out, const torch::Tensor& input,
                        const torch::Tensor& gate_up_weight, const torch::Tensor& down_weight,
                        const torch::Tensor& input_scale,
                        const torch::Tensor& gate_up_weight_scale,
                        const torch::Tensor& hidden_scale, const torch::Tensor& down_weight_scale) {
  gated_mlp(out, input, gate_up_weight, down_weight, input_scale, gate_up_weight_scale,
            hidden_scale, down_weight_scale, sfm::Activation::kGeluTanh, sfm::GemmPath::kAuto,
            sfm::GemmPath::kAuto);
}

void fp8_gelu_mlp_bf16(torch::Tensor& out, const torch::Tensor& input,
                       const torch::Tensor& up_weight, const torch::Tensor& up_bias,
                       const torch::Tensor& down_weight, const torch::Tensor& down_bias,
                       const torch::Tensor& input_scale, const torch::Tensor& up_weight_scale,
                       const torch::Tensor& hidden_scale, const torch::Tensor& down_weight_scale) {
  gelu_mlp(out, input, up_weight, up_bias, down_weight, down_bias, input_scale, up_weight_scale,
           hidden_scale, down_weight_scale, sfm::GemmPath::kAuto, sfm::GemmPath::kAuto);
}

void gated_mlp_with_paths(torch::Tensor& out, const torch::Tensor& input,
                          const torch::Tensor& gate_up_weight, const torch::Tensor& down_weight,
                          const torch::Tensor& input_scale,
                          const torch::Tensor& gate_up_weight_scale,
                          const torch::Tensor& hidden_scale,
                          const torch::Tensor& down_weight_scale, int64_t activation,
                          int64_t gemm1_path, int64_t gemm2_path) {
  TORCH_CHECK(activation == 0 || activation == 1,
              "static_fp8_mlp: `activation` must be 0 (SiLU) or 1 (tanh-GELU), got ", activation);
  gated_mlp(out, input, gate_up_weight, down_weight, input_scale, gate_up_weight_scale,
            hidden_scale, down_weight_scale, static_cast<sfm::Activation>(activation),
            to_path(gemm1_path, "gemm1_path"), to_path(gemm2_path, "gemm2_path"));
}

void gelu_mlp_with_paths(torch::Tensor& out, const torch::Tensor& input,
                         const torch::Tensor& up_weight, const torch::Tensor& up_bias,
                         const torch::Tensor& down_weight, const torch::Tensor& down_bias,
                         const torch::Tensor& input_scale, const torch::Tensor& up_weight_scale,
                         const torch::Tensor& hidden_scale,
                         const torch::Tensor& down_weight_scale, int64_t gemm1_path,
                         int64_t gemm2_path) {
  gelu_mlp(out, input, up_weight, up_bias, down_weight, down_bias, input_scale, up_weight_scale,
           hidden_scale, down_weight_scale, to_path(gemm1_path, "gemm1_path"),
           to_path(gemm2_path, "gemm2_path"));
}

std::string covered_archs() { return sfm::covered_archs(); }
