// Shared host plumbing of the standalone probes in this directory: CHECK(cuda call) (print
// where and why a CUDA call failed, then exit) and one timed graph replay (ReplayTimer: a
// non-blocking stream to capture on, and the events that time a replay on it). Kernels launch
// through the package's own launcher (kernels-src/common.cuh).
#pragma once

#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>

#define CHECK(x)                                                                      \
  do {                                                                                \
    cudaError_t e_ = (x);                                                             \
    if (e_ != cudaSuccess) {                                                          \
      std::fprintf(stderr, "%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(e_)); \
      std::exit(1);                                                                   \
    }                                                                                 \
  } while (0)

// Milliseconds of one replay of `exec` on `stream`, between the events e0 and e1.
inline float replay_ms(cudaGraphExec_t exec, cudaStream_t stream, cudaEvent_t e0, cudaEvent_t e1) {
  CHECK(cudaEventRecord(e0, stream));
  CHECK(cudaGraphLaunch(exec, stream));
  CHECK(cudaEventRecord(e1, stream));
  CHECK(cudaEventSynchronize(e1));
  float ms = 0.f;
  CHECK(cudaEventElapsedTime(&ms, e0, e1));
  return ms;
}

// The stream a probe captures its graphs on, and the two events replay_ms times them with.
struct ReplayTimer {
  cudaStream_t stream;
  cudaEvent_t start, stop;
  ReplayTimer() {
    CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    CHECK(cudaEventCreate(&start));
    CHECK(cudaEventCreate(&stop));
  }
  float replay_ms(cudaGraphExec_t exec) const { return ::replay_ms(exec, stream, start, stop); }
};
