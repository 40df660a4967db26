// The seam between the torch binding (host C++, arch independent) and the CUDA
// translation units, each compiled for its own set of architectures.
//
// kernel-builder compiles every [kernel.*] section of build.toml separately, and a
// section whose arch needs a newer CUDA (10.0a, 12.0) is skipped on older toolkits.
// So the binding cannot link against arch-specific launchers by name. Instead each
// arch-group translation unit registers a `KernelBackend` at load time, naming the
// architectures it was compiled for (nvcc's __CUDA_ARCH_LIST__), and the binding picks
// the backend that covers the current device.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <vector>

namespace static_fp8_mlp {

enum class Activation : int { kSilu = 0, kGeluTanh = 1 };

// Which GEMM implementation to use; kAuto lets the backend pick by shape.
enum class GemmPath : int {
  kAuto = 0,
  kSmallM = 1,         // portable mma.sync, small token tiles (+ cluster split-K on sm_90+)
  kLargeM = 2,         // portable mma.sync, 128x128 tiles
  kTensorCoreTma = 3,  // sm_90a wgmma + TMA
  kWeightStream = 4,   // sm_90+ persistent weight-streaming kernel (decode)
  kTensorCoreSplitK = 5,  // sm_90a wgmma, split-K over a workspace (down GEMM, M <= 64)
  kTensorCoreTall128 = 6,  // sm_90a wgmma, 128-token CTAs with 128 weight rows, any M
  kTensorCoreTall192 = 7,  // sm_90a wgmma, 128-token CTAs with 192 weight rows, any M
  kWarpStream = 8,     // sm_89+ register-streaming warps; K <= ~6000 (x tiles in shared memory)
  kTensorCoreStream = 9,  // sm_90a register-sourced wgmma, cluster split-K (mid-sized batches)
  kTensorCoreTall64 = 10,  // sm_90a wgmma, 128-token CTAs with 64 weight rows, any M
  kTensorCoreSplitKCluster = 11,  // sm_90a wgmma, split-K reduced in clusters (down GEMM)
  kTensorCoreSwapAB = 12,  // sm_90a wgmma, weights x all tokens (down GEMM: split-K), any M
  kTensorCoreSwapABCluster = 13,  // the same down GEMM, split-K reduced in clusters
};

// x[M, K] (row stride K) times w[N, K]^T, both FP8 e4m3, row-major and 16-byte aligned.
struct Fp8GemmOperands {
  const uint8_t* x;
  const uint8_t* w;
  int64_t m;
  int64_t n;  // rows of w (2H for the gated GEMM1)
  int64_t k;
  const float* x_scale;     // one element
  const float* w_scale;     // one element, or n elements when w_scale_per_row
  bool w_scale_per_row;
  int64_t x_pitch = 0;  // bytes from one row of x to the next; 0: packed (k)
};

// hidden[M, H] = q(act(gate) * up / hidden_scale), gate/up = rows [0, H) / [H, 2H) of w.
struct GatedGemm1Args {
  Fp8GemmOperands op;
  Activation act;
  const float* hidden_scale;
  uint8_t* hidden;
  int64_t hidden_pitch;  // bytes from one hidden row to the next; 0: packed (H)
};

// hidden[M, N] = q(gelu_tanh(x w^T * scales + bias) / hidden_scale).
struct DenseGemm1Args {
  Fp8GemmOperands op;
  const void* bias;  // bf16 [N]
  const float* hidden_scale;
  uint8_t* hidden;
  int64_t hidden_pitch;  // as in GatedGemm1Args
};

// out[M, N] = bf16(x w^T * scales + bias); bias may be null.
struct Gemm2Args {
  Fp8GemmOperands op;
  const void* bias;  // bf16 [N] or nullptr
  void* out;         // bf16 [M, N]
  float* workspace;  // gemm2_workspace_bytes(...) bytes from the caller, or nullptr if 0
  int64_t workspace_bytes;
  bool gated;        // the down GEMM of a gated MLP (the kernel picked may differ)
};

// out[m, k] = q(input[m, k] * channel_scale[k] / scale), input bf16 with row stride.
struct InputQuantArgs {
  const void* input;  // bf16
  int64_t row_stride; // in elements
  const void* channel_scale;  // bf16 [K]
  const float* scale;
  uint8_t* out;       // fp8 [M, K] contiguous
  int64_t m;
  int64_t k;
};

struct KernelBackend {
  const char* name;
  std::vector<int> archs;  // e.g. {89, 90}: 10 * major + minor
  // Each launcher enqueues on `stream` and returns the launch error (cudaSuccess if
  // fine); none of them synchronises or allocates.
  cudaError_t (*input_quant)(const InputQuantArgs&, cudaStream_t);
  cudaError_t (*gated_gemm1)(const GatedGemm1Args&, GemmPath, cudaStream_t);
  cudaError_t (*dense_gemm1)(const DenseGemm1Args&, GemmPath, cudaStream_t);
  cudaError_t (*gemm2)(const Gemm2Args&, GemmPath, cudaStream_t);
  // Scratch the down GEMM (of a gated MLP: `gated`) needs for an [m, k] x [n, k]^T
  // problem on `path` (0: none). The binding allocates it from torch's caching allocator
  // on the call's stream.
  int64_t (*gemm2_workspace_bytes)(int64_t m, int64_t n, int64_t k, bool gated, GemmPath path);
  // Row pitch in bytes of the [m, h] FP8 hidden state between the two GEMMs of an MLP
  // (gate/up on path1 over K = k, down on path2 into n columns), or 0: packed rows. The
  // binding allocates it so; the launchers refuse a pitch their kernel does not take.
  int64_t (*hidden_pitch)(int64_t m, int64_t k, int64_t h, int64_t n, bool gated,
                          GemmPath path1, GemmPath path2);
  // Higher wins when two backends cover the same architecture.
  int priority;
};

// Called from static initialisers of the arch translation units.
bool register_backend(const KernelBackend& backend);

// The best backend for compute capability `major.minor`, or nullptr.
const KernelBackend* find_backend(int major, int minor);

// "8.9, 9.0, 10.0, 12.0"-style list of what this build covers, for error messages.
std::string covered_archs();

// Compute capability of a device, queried once per device and cached.
struct DeviceArch {
  int major;
  int minor;
};
DeviceArch device_arch(int device);

// Parses nvcc's __CUDA_ARCH_LIST__ ("890,900") into {89, 90}.
std::vector<int> parse_arch_list(const char* list);

}  // namespace static_fp8_mlp
