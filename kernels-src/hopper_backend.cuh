// The Hopper backend: the wgmma/TMA GEMMs for batches large enough to fill the tensor
// cores, the persistent weight-streaming kernel (fp8_gemm_stream.cuh) for decode-sized
// batches, and the portable mma.sync kernels when a path is forced. Which kernel runs a
// GEMM is decided in hopper_dispatch.cuh (hopper::pick); this file launches it.
#pragma once

#include "fp8_gemm_stream.cuh"
#include "fp8_gemm_swap.cuh"
#include "fp8_gemm_warp.cuh"
#include "fp8_gemm_wgmma.cuh"
#include "fp8_gemm_wgmma_rs.cuh"
#include "hopper_dispatch.cuh"
#include "portable_backend.cuh"

// Tuning knobs (defaults measured on H200; overridable for tuning builds).
#ifndef SFM_STREAM_DENSE_WIDTHS  // weight-row widths tried for the non-gated GEMMs
#if SFM_STREAM_ROW_GROUPS > 1
#define SFM_STREAM_DENSE_WIDTHS 32, 64
#else
#define SFM_STREAM_DENSE_WIDTHS 16, 32, 64
#endif
#endif


namespace static_fp8_mlp {
namespace {
namespace hopper {

inline int current_sms() {
  int dev = 0;
  return cudaGetDevice(&dev) == cudaSuccess ? sm_count(dev) : 1;
}

template <EpilogueKind EPI>
bool warp_ok(int64_t m, int64_t k) {
  int dev = 0;
  return m <= kMaxWarpTokens && cudaGetDevice(&dev) == cudaSuccess &&
         warp_gemm::supports<EPI>(m, k, dev);
}

// Whether the register-sourced wgmma kernel takes an [m, k] x [n_out] problem.
template <EpilogueKind EPI>
bool rs_ok(int64_t m, int64_t k, int64_t n_out) {
  int dev = 0;
  return m <= kMaxRsTokens && cudaGetDevice(&dev) == cudaSuccess &&
         wgmma_rs::supports<EPI>(m, k, n_out, dev);
}

// pick for a GEMM with epilogue EPI (the down GEMM: kBiasToBf16; the gated gate/up GEMM:
// kGatedToFp8) of m tokens over a [w_rows, k] weight into n_out columns, on this device;
// gated_down: the down GEMM of a gated MLP.
template <EpilogueKind EPI>
Kernel pick_on_device(int64_t m, GemmPath path, int64_t w_rows, int64_t k, int64_t n_out,
                      int sms, bool gated_down = false) {
  return pick(m, path, /*gemm2=*/EPI == EpilogueKind::kBiasToBf16, w_rows, k,
              warp_ok<EPI>(m, k), rs_ok<EPI>(m, k, n_out), sms,
              /*gated_mlp=*/EPI == EpilogueKind::kGatedToFp8 || gated_down);
}

inline int64_t gemm2_workspace_bytes(int64_t m, int64_t n, int64_t k, bool gated, GemmPath path) {
  const int sms = current_sms();
  const Kernel kernel = pick_on_device<EpilogueKind::kBiasToBf16>(m, path, n, k, n, sms, gated);
  if (kernel == Kernel::kSwapAB) return swap_gemm::down_workspace_bytes(m, n, k, sms);
  if (kernel != Kernel::kWgmmaSplitK) return 0;
  return wgmma_gemm::split_workspace_bytes(m, n, k, sms);
}

// hidden_pitch of the KernelBackend: see padded_hidden_pitch. Aligned H (every gated
// benchmark shape) returns before the two GEMMs' kernels are picked a second time.
inline int64_t hidden_pitch(int64_t m, int64_t k, int64_t h, int64_t n, bool gated,
                            GemmPath path1, GemmPath path2) {
  if (!hidden_rows_straddle(h)) return 0;
  const int sms = current_sms();
  const Kernel k1 = gated ? pick_on_device<EpilogueKind::kGatedToFp8>(m, path1, 2 * h, k, h, sms)
                          : pick_on_device<EpilogueKind::kBiasGeluToFp8>(m, path1, h, k, h, sms);
  const Kernel k2 = pick_on_device<EpilogueKind::kBiasToBf16>(m, path2, n, h, n, sms, gated);
  return padded_hidden_pitch(h, k1, k2);
}

// The streaming kernel with a 16-token tile up to 16 tokens, 32-token tiles above;
// the weight-tile width is chosen per problem among BWS.
template <EpilogueKind EPI, Activation ACT, int... BWS>
cudaError_t stream(const Fp8GemmOperands& op, int64_t n_out, void* out, const void* bias,
                   const float* hidden_scale, cudaStream_t s) {
  const auto epi = make_epilogue(op, bias, hidden_scale);
  if (op.m <= 16) {
    return stream_gemm::launch<16, EPI, ACT, BWS...>(op.x, op.w, op.m, op.k, n_out, out, epi, s);
  }
  return stream_gemm::launch<32, EPI, ACT, BWS...>(op.x, op.w, op.m, op.k, n_out, out, epi, s);
}

// Weight rows of the tall wgmma CTAs a path forces (0: by batch size and tile count).
inline int forced_tall_rows(GemmPath path) {
  switch (path) {
    case GemmPath::kTensorCoreTall64: return 64;
    case GemmPath::kTensorCoreTall128: return 128;
    case GemmPath::kTensorCoreTall192: return 192;
    default: return 0;
  }
}

// out_pitch: the FP8 hidden's row pitch in bytes (0: packed).
inline wgmma_gemm::WgmmaParams make_params(const Fp8GemmOperands& op, int64_t n_out, void* out,
                                           const void* bias, const float* hidden_scale,
                                           int64_t out_pitch = 0) {
  wgmma_gemm::WgmmaParams p;
  p.m = static_cast<int>(op.m);
  p.k = static_cast<int>(op.k);
  p.n_out = static_cast<int>(n_out);
  p.out = out;
  p.epi = make_epilogue(op, bias, hidden_scale);
  p.x_pitch = op.x_pitch;
  p.out_pitch = out_pitch;
  return p;
}

// Whether `kernel` cannot take these row pitches (0: packed): only the wgmma kernel reads
// x or writes the hidden with padded rows (padded_hidden_pitch pads only between two of
// its GEMMs).
inline bool refuses_pitch(Kernel kernel, int64_t x_pitch, int64_t out_pitch = 0) {
  return (x_pitch != 0 || out_pitch != 0) && kernel != Kernel::kWgmma;
}

template <Activation ACT>
cudaError_t gated_gemm1_with(const GatedGemm1Args& a, Kernel kernel, GemmPath path, int sms,
                             cudaStream_t stream) {
  if (kernel == Kernel::kStream) {
    return hopper::stream<EpilogueKind::kGatedToFp8, ACT, 32, 64>(a.op, a.op.n / 2, a.hidden,
                                                                  nullptr, a.hidden_scale, stream);
  }
  const auto p = make_params(a.op, a.op.n / 2, a.hidden, nullptr, a.hidden_scale, a.hidden_pitch);
  if (kernel == Kernel::kSwapAB) {
    return swap_gemm::launch<EpilogueKind::kGatedToFp8, ACT>(a.op.x, a.op.w, p, sms, stream);
  }
  return wgmma_gemm::launch<EpilogueKind::kGatedToFp8, ACT>(a.op.x, a.op.w, p, sms, stream,
                                                            forced_tall_rows(path));
}

inline cudaError_t gated_gemm1(const GatedGemm1Args& a, GemmPath path, cudaStream_t stream) {
  const int sms = current_sms();
  const Kernel kernel =
      pick_on_device<EpilogueKind::kGatedToFp8>(a.op.m, path, a.op.n, a.op.k, a.op.n / 2, sms);
  if (refuses_pitch(kernel, a.op.x_pitch, a.hidden_pitch)) return cudaErrorInvalidValue;
  if (kernel == Kernel::kPortable) return portable::gated_gemm1(a, path, stream);
  if (kernel == Kernel::kWarp) return warp_gemm::Gemms::gated_gemm1(a, stream);
  if (kernel == Kernel::kRegWgmma) return wgmma_rs::Gemms::gated_gemm1(a, stream);
  if (a.act == Activation::kSilu) {
    return gated_gemm1_with<Activation::kSilu>(a, kernel, path, sms, stream);
  }
  return gated_gemm1_with<Activation::kGeluTanh>(a, kernel, path, sms, stream);
}

inline cudaError_t dense_gemm1(const DenseGemm1Args& a, GemmPath path, cudaStream_t stream) {
  const int sms = current_sms();
  const Kernel kernel =
      pick_on_device<EpilogueKind::kBiasGeluToFp8>(a.op.m, path, a.op.n, a.op.k, a.op.n, sms);
  if (refuses_pitch(kernel, a.op.x_pitch, a.hidden_pitch)) return cudaErrorInvalidValue;
  if (kernel == Kernel::kPortable) return portable::dense_gemm1(a, path, stream);
  if (kernel == Kernel::kWarp) return warp_gemm::Gemms::dense_gemm1(a, stream);
  if (kernel == Kernel::kRegWgmma) return wgmma_rs::Gemms::dense_gemm1(a, stream);
  if (kernel == Kernel::kStream) {
    return hopper::stream<EpilogueKind::kBiasGeluToFp8, Activation::kGeluTanh, SFM_STREAM_DENSE_WIDTHS>(
        a.op, a.op.n, a.hidden, a.bias, a.hidden_scale, stream);
  }
  const auto p = make_params(a.op, a.op.n, a.hidden, a.bias, a.hidden_scale, a.hidden_pitch);
  if (kernel == Kernel::kSwapAB) {
    return swap_gemm::launch<EpilogueKind::kBiasGeluToFp8, Activation::kGeluTanh>(
        a.op.x, a.op.w, p, sms, stream);
  }
  return wgmma_gemm::launch<EpilogueKind::kBiasGeluToFp8, Activation::kGeluTanh>(
      a.op.x, a.op.w, p, sms, stream, forced_tall_rows(path));
}

inline cudaError_t gemm2(const Gemm2Args& a, GemmPath path, cudaStream_t stream) {
  const int sms = current_sms();
  const Kernel kernel = pick_on_device<EpilogueKind::kBiasToBf16>(a.op.m, path, a.op.n, a.op.k,
                                                                  a.op.n, sms, a.gated);
  if (refuses_pitch(kernel, a.op.x_pitch)) return cudaErrorInvalidValue;
  if (kernel == Kernel::kPortable) return portable::gemm2(a, path, stream);
  if (kernel == Kernel::kWarp) return warp_gemm::Gemms::gemm2(a, stream);
  if (kernel == Kernel::kRegWgmma) return wgmma_rs::Gemms::gemm2(a, stream);
  if (kernel == Kernel::kStream) {
    return hopper::stream<EpilogueKind::kBiasToBf16, Activation::kGeluTanh, SFM_STREAM_DENSE_WIDTHS>(
        a.op, a.op.n, a.out, a.bias, nullptr, stream);
  }
  auto p = make_params(a.op, a.op.n, a.out, a.bias, nullptr);
  if (kernel == Kernel::kSwapAB || kernel == Kernel::kSwapABCluster) {
    p.trigger_next = swap_gemm::triggers_next(a.op.n, kernel == Kernel::kSwapABCluster,
                                              l2_resident_weights(a.op.n, a.op.k));
  }
  if (kernel == Kernel::kSwapAB) {
    return swap_gemm::launch_down<Activation::kGeluTanh>(a.op.x, a.op.w, p, a.workspace,
                                                          a.workspace_bytes, sms, stream);
  }
  if (kernel == Kernel::kSwapABCluster) {
    return swap_gemm::launch_down_cluster<Activation::kGeluTanh>(a.op.x, a.op.w, p, sms, stream);
  }
  if (kernel == Kernel::kWgmmaSplitKCluster) {
    return wgmma_gemm::launch_split_k_cluster<Activation::kGeluTanh>(a.op.x, a.op.w, p, sms,
                                                                      stream);
  }
  if (kernel == Kernel::kWgmmaSplitK) {
    return wgmma_gemm::launch_split_k<Activation::kGeluTanh>(a.op.x, a.op.w, p, a.workspace,
                                                              a.workspace_bytes, sms, stream);
  }
  return wgmma_gemm::launch<EpilogueKind::kBiasToBf16, Activation::kGeluTanh>(
      a.op.x, a.op.w, p, sms, stream, forced_tall_rows(path));
}

}  // namespace hopper
}  // namespace
}  // namespace static_fp8_mlp
