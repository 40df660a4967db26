// What does it cost to hand data from one grid-wide step to the next on one GPU?
//
// A small MLP at decode batch sizes (the dense 1152x4304 MLP at M = 16: 5 MB of
// L2-resident weights per GEMM) is a chain of latencies, not of bytes. Fusing its two
// GEMMs into one kernel only pays if an in-kernel hand-off (an atomic ticket and a spin
// on it) is much cheaper than a kernel boundary with programmatic dependent launch. This
// probe measures both, with the same work per step: every CTA (one per SM) reads
// `kb` KiB written by the previous step (other CTAs' data, from L2) and writes its own.
//
//   mode pdl      N kernels in a CUDA graph, each waits (griddepcontrol.wait) for the last
//   mode plain    the same without the programmatic-serialization attribute
//   mode barrier  one kernel, N steps separated by a grid barrier (ticket + acquire spin)
//
//   nvcc -std=c++17 -O3 -arch=sm_90a -o /tmp/handoff_probe benchmarks/handoff_probe.cu
//   /tmp/handoff_probe [kb=16]
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "../kernels-src/common.cuh"
#include "probe_check.h"

constexpr int kThreads = 128;

// One step's work: read kb KiB of what CTA (blockIdx + 1) wrote, write our own slot.
__device__ __forceinline__ void step(const uint4* src, uint4* dst, int words, int ctas) {
  const int from = (blockIdx.x + 1) % ctas;
  uint4 acc = make_uint4(0, 0, 0, 0);
  for (int i = threadIdx.x; i < words; i += kThreads) {
    const uint4 v = __ldcg(src + static_cast<int64_t>(from) * words + i);
    acc.x ^= v.x;
    acc.y += v.y;
    acc.z ^= v.z;
    acc.w += v.w;
  }
  for (int i = threadIdx.x; i < words; i += kThreads) {
    dst[static_cast<int64_t>(blockIdx.x) * words + i] = make_uint4(acc.x + i, acc.y, acc.z, acc.w);
  }
}

__global__ void __launch_bounds__(kThreads, 1) chain_kernel(const uint4* src, uint4* dst, int words) {
  static_fp8_mlp::pdl_wait();
  static_fp8_mlp::pdl_trigger();
  step(src, dst, words, gridDim.x);
}

// Grid barrier on a 64-bit ticket counter that never resets: a CTA's ticket says which
// generation it belongs to, and it waits until the whole generation has arrived.
__device__ __forceinline__ void grid_barrier(unsigned long long* counter, int ctas) {
  __syncthreads();
  if (threadIdx.x == 0) {
    unsigned long long ticket;
    asm volatile("atom.add.release.gpu.u64 %0, [%1], 1;\n" : "=l"(ticket) : "l"(counter) : "memory");
    const unsigned long long target = (ticket / ctas + 1) * ctas;
    unsigned long long now;
    do {
      asm volatile("ld.acquire.gpu.u64 %0, [%1];\n" : "=l"(now) : "l"(counter) : "memory");
    } while (now < target);
  }
  __syncthreads();
}

__global__ void __launch_bounds__(kThreads, 1)
    barrier_kernel(uint4* a, uint4* b, int words, int steps, unsigned long long* counter) {
  for (int s = 0; s < steps; ++s) {
    step(s & 1 ? b : a, s & 1 ? a : b, words, gridDim.x);
    grid_barrier(counter, gridDim.x);
  }
}

int main(int argc, char** argv) {
  const int kb = argc > 1 ? std::atoi(argv[1]) : 16;
  int sms = 0;
  CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  const int words = kb * 1024 / 16;
  const size_t bytes = static_cast<size_t>(sms) * (words > 0 ? words : 1) * 16;
  uint4 *a, *b;
  unsigned long long* counter;
  CHECK(cudaMalloc(&a, bytes));
  CHECK(cudaMalloc(&b, bytes));
  CHECK(cudaMalloc(&counter, sizeof(*counter)));
  CHECK(cudaMemset(a, 1, bytes));
  CHECK(cudaMemset(b, 2, bytes));
  CHECK(cudaMemset(counter, 0, sizeof(*counter)));
  const ReplayTimer timer;
  const cudaStream_t stream = timer.stream;
  constexpr int kSteps = 200;

  auto time_graph = [&](auto&& record) {
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    record();
    CHECK(cudaStreamEndCapture(stream, &graph));
    CHECK(cudaGraphInstantiate(&exec, graph, 0));
    float best = 1e30f;
    for (int r = 0; r < 7; ++r) {
      CHECK(cudaGraphLaunch(exec, stream));  // warm-up for r == 0
      const float ms = timer.replay_ms(exec);
      if (r > 0 && ms < best) best = ms;
    }
    CHECK(cudaGraphExecDestroy(exec));
    CHECK(cudaGraphDestroy(graph));
    return best * 1000.0f / kSteps;
  };

  for (int pdl = 1; pdl >= 0; --pdl) {
    const float us = time_graph([&] {
      for (int s = 0; s < kSteps; ++s) {
        CHECK(static_fp8_mlp::launch_maybe_programmatic(
            chain_kernel, dim3(sms), dim3(kThreads), pdl == 1, stream,
            static_cast<const uint4*>(s & 1 ? b : a), s & 1 ? a : b, words));
      }
    });
    std::printf("mode %-7s kb %3d: %.3f us per step\n", pdl ? "pdl" : "plain", kb, us);
  }
  const float us = time_graph([&] {
    barrier_kernel<<<sms, kThreads, 0, stream>>>(a, b, words, kSteps, counter);
  });
  std::printf("mode %-7s kb %3d: %.3f us per step\n", "barrier", kb, us);
  return 0;
}
