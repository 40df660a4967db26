// How close can a two-GEMM decode MLP get to a plain read of its weights, depending on how
// the two weight streams hand off? (No math: the "GEMMs" only stream their weights.)
//
// A gated decode MLP reads its gate/up weights (GeGLU 2048x16384: 64 MiB), then its down
// weights (32 MiB), and the down GEMM may only use its data once every CTA of the gate/up
// GEMM has written the hidden state. Twenty-third session (benchmarks/RESULTS.md): the
// landed kernels take 28.6-30.2 us per GeGLU call at M = 1-16; a plain read of the same
// bytes in two kernels took 26.8 us (seventh session); the programmatic completions cost
// about 1.6 us each. This probe streams the same bytes with 1-D bulk copies into a
// 6 x 32 KB ring per CTA (one CTA per SM, the fastest copy shape of tma_stream_probe.cu),
// as CUDA-graph replays of back-to-back calls over weight sets rotating through 4x the
// L2, in five hand-off modes:
//   0 two kernels, programmatic launches as before the twenty-third session: the second
//     loads its first ring stages before its wait and never triggers early
//   1 two kernels with the twenty-third session's hand-offs: both load their first
//     stages before their wait, the second lets the next call launch as it starts
//   2 one persistent kernel per call: stream A, then B; its producer runs on into B's
//     stages while the consumers meet at a grid barrier (ticket + acquire spin) before
//     using B, as a fused decode MLP would before reading the hidden state
//   3 one kernel streaming A and B as one buffer: the hand-off-free reference
//   4 two plain launches (no programmatic launch)
// Mode 2 needs every CTA resident at once: one CTA per SM, nothing else on the GPU.
// Lent H200, twenty-fourth session (results/decode_handoff_probe_*_twentyfourth.txt), GeGLU
// bytes: modes 0-4 23.7 / 22.5 / 23.9-24.0 / 22.2 / 25.8-25.9 us; SwiGLU's (112 + 56 MiB)
// 40.7 / 38.8 / 40.4 / 38.8 / 42.2. The landed hand-offs cost 0.3 us over no hand-off at
// all, and the grid barrier is slower than two kernels: no fused decode kernel.
//
//   nvcc -std=c++17 -O3 -arch=sm_90a -o /tmp/decode_handoff_probe benchmarks/decode_handoff_probe.cu
//   /tmp/decode_handoff_probe [A_MiB=64] [B_MiB=32] [calls=20]
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "../kernels-src/common.cuh"
#include "probe_check.h"
#include "probe_ring.h"

constexpr int kStageBytes = 32 * 1024;
constexpr int kStages = 6;
constexpr int kConsumerWarps = 4;
constexpr int kThreads = 32 * (kConsumerWarps + 1);
constexpr int kSmemBytes = kStages * kStageBytes + 2 * kStages * 8 + 1024;

using static_fp8_mlp::pdl_trigger;
using static_fp8_mlp::pdl_wait;

// A CTA's ring and its running stage count (the parities follow from it).
struct Ring {
  uint8_t* data;
  uint64_t* full;
  uint64_t* empty;
};

__device__ Ring make_ring() {
  extern __shared__ uint8_t smem_raw[];
  uint8_t* base = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));
  Ring r{base, reinterpret_cast<uint64_t*>(base + kStages * kStageBytes), nullptr};
  r.empty = r.full + kStages;
  if (threadIdx.x == 0) {
    for (int s = 0; s < kStages; ++s) {
      mbar_init(&r.full[s], 1);
      mbar_init(&r.empty[s], kConsumerWarps);
    }
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();
  return r;
}

// This CTA's stages of a buffer: blockIdx.x, + gridDim.x, ...
__device__ __forceinline__ int my_stages(int64_t bytes) {
  const int total = static_cast<int>(bytes / kStageBytes);
  return static_cast<int>(blockIdx.x) < total ? (total - 1 - blockIdx.x) / gridDim.x + 1 : 0;
}

// Producer (one lane): this CTA's stages [j0, j1) of w, as ring stages it, it + 1, ...
__device__ void issue(const Ring& r, const uint8_t* w, int j0, int j1, int& it) {
  for (int j = j0; j < j1; ++j, ++it) {
    const int slot = it % kStages;
    if (it >= kStages) mbar_wait(&r.empty[slot], ((it / kStages) - 1) & 1);
    mbar_expect_tx(&r.full[slot], kStageBytes);
    const int64_t stage = blockIdx.x + static_cast<int64_t>(j) * gridDim.x;
    bulk1d(r.data + slot * kStageBytes, w + stage * kStageBytes, kStageBytes, &r.full[slot]);
  }
}

// Consumers: wait for n ring stages from `it` on, touch them, release the slots.
__device__ void consume(const Ring& r, int n, int& it, int& acc) {
  const int lane = threadIdx.x % 32;
  for (int i = 0; i < n; ++i, ++it) {
    const int slot = it % kStages;
    mbar_wait(&r.full[slot], (it / kStages) & 1);
    acc += r.data[slot * kStageBytes + (threadIdx.x - 32) * 64];
    __syncwarp();
    if (lane == 0) mbar_arrive(&r.empty[slot]);
  }
}

// Grid barrier among the consumer warps of every CTA, on a 64-bit ticket counter that
// never resets (a ticket's generation is ticket / gridDim.x).
__device__ void consumers_grid_barrier(unsigned long long* counter) {
  asm volatile("bar.sync 1, %0;" ::"n"(32 * kConsumerWarps) : "memory");
  if (threadIdx.x == 32) {
    unsigned long long ticket, now;
    asm volatile("atom.add.release.gpu.u64 %0, [%1], 1;" : "=l"(ticket) : "l"(counter) : "memory");
    const unsigned long long target = (ticket / gridDim.x + 1) * gridDim.x;
    do {
      asm volatile("ld.acquire.gpu.u64 %0, [%1];" : "=l"(now) : "l"(counter) : "memory");
    } while (now < target);
  }
  asm volatile("bar.sync 1, %0;" ::"n"(32 * kConsumerWarps) : "memory");
}

// One streamed buffer per kernel. early: the first ring stages before the wait for the
// previous kernel; trig: 0 never (completion), 1 after the wait, 2 at the start.
__global__ void __launch_bounds__(kThreads, 1)
    phase_kernel(const uint8_t* w, int64_t bytes, int early, int trig, int* sink) {
  const Ring r = make_ring();
  if (trig == 2) pdl_trigger();
  const int n = my_stages(bytes);
  int it = 0, acc = 0;
  const int e = threadIdx.x == 0 && early ? min(n, kStages) : 0;
  if (threadIdx.x == 0) issue(r, w, 0, e, it);
  // Every thread waits (a GEMM's first stage also needs its activations, loaded after the
  // wait); trig 1 then lets the next kernel launch, as the gate/up GEMMs do.
  pdl_wait();
  if (trig == 1) pdl_trigger();
  if (threadIdx.x == 0) {
    issue(r, w, e, n, it);
  } else if (threadIdx.x >= 32) {
    consume(r, n, it, acc);
  }
  if (acc == 0x7fffffff) *sink = acc;
}

// Both buffers in one kernel, a grid barrier between them (see the header, mode 2).
__global__ void __launch_bounds__(kThreads, 1)
    fused_kernel(const uint8_t* a, int64_t a_bytes, const uint8_t* b, int64_t b_bytes,
                 unsigned long long* counter, int* sink) {
  const Ring r = make_ring();
  pdl_trigger();
  const int na = my_stages(a_bytes), nb = my_stages(b_bytes);
  int it = 0, acc = 0;
  if (threadIdx.x == 0) {
    const int e = min(na, kStages);
    issue(r, a, 0, e, it);
    pdl_wait();
    issue(r, a, e, na, it);
    issue(r, b, 0, nb, it);  // weights: no need to wait for the barrier
  } else if (threadIdx.x >= 32) {
    pdl_wait();
    consume(r, na, it, acc);
    consumers_grid_barrier(counter);  // "every CTA has written the hidden state"
    consume(r, nb, it, acc);
  }
  if (acc == 0x7fffffff) *sink = acc;
}

// A probe kernel: one CTA per SM (`grid`), the ring's shared memory.
template <typename... Params, typename... Args>
void launch(void (*kernel)(Params...), int grid, bool programmatic, cudaStream_t s, Args... args) {
  CHECK(static_fp8_mlp::launch_maybe_programmatic_smem(kernel, dim3(grid), dim3(kThreads),
                                                       kSmemBytes, programmatic, s, args...));
}

int main(int argc, char** argv) {
  const int64_t a_bytes = (argc > 1 ? std::atoll(argv[1]) : 64) << 20;
  const int64_t b_bytes = (argc > 2 ? std::atoll(argv[2]) : 32) << 20;
  const int calls = argc > 3 ? std::atoi(argv[3]) : 20;
  int dev = 0, sms = 0, l2 = 0;
  CHECK(cudaGetDevice(&dev));
  CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev));
  const int64_t set_bytes = a_bytes + b_bytes;
  const int sets = static_cast<int>(std::max<int64_t>(2, (4 * int64_t(l2)) / set_bytes + 1));
  uint8_t* buf = nullptr;
  CHECK(cudaMalloc(&buf, set_bytes * sets));
  CHECK(cudaMemset(buf, 1, set_bytes * sets));
  unsigned long long* counter = nullptr;
  int* sink = nullptr;
  CHECK(cudaMalloc(&counter, sizeof(*counter)));
  CHECK(cudaMemset(counter, 0, sizeof(*counter)));
  CHECK(cudaMalloc(&sink, sizeof(int)));
  CHECK(cudaFuncSetAttribute(phase_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes));
  CHECK(cudaFuncSetAttribute(fused_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes));
  const ReplayTimer timer;
  const cudaStream_t s = timer.stream;
  std::printf("%d SMs, L2 %d MiB; A %lld MiB then B %lld MiB per call, %d calls per graph, %d weight sets\n",
              sms, l2 >> 20, static_cast<long long>(a_bytes >> 20),
              static_cast<long long>(b_bytes >> 20), calls, sets);
  const char* names[] = {"two kernels, PDL (before the 23rd session)",
                         "two kernels, early weights + early trigger (landed)",
                         "one kernel, grid barrier between A and B",
                         "one kernel streaming A and B as one buffer",
                         "two plain launches"};
  for (int mode = 0; mode < 5; ++mode) {
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
    for (int c = 0; c < calls; ++c) {
      const uint8_t* a = buf + (c % sets) * set_bytes;
      const uint8_t* b = a + a_bytes;
      switch (mode) {
        case 0:
          launch(phase_kernel, sms, true, s, a, a_bytes, 0, 1, sink);
          launch(phase_kernel, sms, true, s, b, b_bytes, 1, 0, sink);
          break;
        case 1:
          launch(phase_kernel, sms, true, s, a, a_bytes, 1, 1, sink);
          launch(phase_kernel, sms, true, s, b, b_bytes, 1, 2, sink);
          break;
        case 2: launch(fused_kernel, sms, true, s, a, a_bytes, b, b_bytes, counter, sink); break;
        case 3: launch(phase_kernel, sms, true, s, a, set_bytes, 1, 2, sink); break;
        default:
          launch(phase_kernel, sms, false, s, a, a_bytes, 0, 0, sink);
          launch(phase_kernel, sms, false, s, b, b_bytes, 0, 0, sink);
      }
    }
    CHECK(cudaStreamEndCapture(s, &graph));
    CHECK(cudaGraphInstantiate(&exec, graph, 0));
    std::vector<float> us;
    for (int rep = 0; rep < 12; ++rep) {
      const float ms = timer.replay_ms(exec);
      if (rep >= 2) us.push_back(ms * 1000.f / calls);  // the first two: warm-up
    }
    std::sort(us.begin(), us.end());
    const float med = us[us.size() / 2];
    std::printf("mode %d  %-52s %7.2f us per call (min %.2f, max %.2f)  %.2f TB/s\n", mode,
                names[mode], med, us.front(), us.back(), set_bytes / (med * 1e-6) / 1e12);
    CHECK(cudaGraphExecDestroy(exec));
    CHECK(cudaGraphDestroy(graph));
  }
  return 0;
}
