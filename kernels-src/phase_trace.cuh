// Opt-in timeline of a kernel's phases, for probes only (scripts/phase_trace.py).
//
// Built with -DSFM_PHASE_TRACE (never in a release: without it every hook below is
// empty), thread 0 of each CTA stamps %globaltimer and clock64 at numbered points and,
// at its exit, appends one record to a device buffer whose address the host reads once
// from the environment variable SFM_PHASE_TRACE_PTR (an int64 tensor's data_ptr, set
// before the first call). Buffer layout, in uint64 words: [0] the record count (atomic),
// then records of kTraceWords words from word kTraceWords: tag, (smid << 48 | blockIdx.y
// << 24 | blockIdx.x), then kTracePoints pairs (globaltimer ns, clock64).
//
// Spans, for persistent kernels whose CTAs loop over tiles (a point per event would not
// fit): pair i then holds (clock64 cycles summed over every span i the thread closed,
// how many it closed) instead of a stamp; pairs 0 and 7 stay the entry and exit stamps.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <cstdlib>

namespace static_fp8_mlp {
namespace {
namespace phase_trace {

constexpr int kTracePoints = 8;
constexpr int kTraceWords = 2 + 2 * kTracePoints;

#ifdef SFM_PHASE_TRACE
__device__ unsigned long long* g_buffer;
__device__ unsigned long long g_capacity;  // records

struct Stamps {
  unsigned long long ns[kTracePoints];
  unsigned long long clk[kTracePoints];
};

// Stamp point i once `dep` is available (so that the compiler cannot hoist the read
// above the work that produced it).
__device__ __forceinline__ void stamp(Stamps& s, int i, uint32_t dep = 0) {
  unsigned long long ns, clk;
  asm volatile("{\n .reg .b32 d;\n mov.b32 d, %2;\n mov.u64 %0, %%globaltimer;\n"
               " mov.u64 %1, %%clock64;\n}\n"
               : "=l"(ns), "=l"(clk)
               : "r"(dep));
  s.ns[i] = ns;
  s.clk[i] = clk;
}

// Closes span i, opened at clock64 `begin`.
__device__ __forceinline__ void close_span(Stamps& s, int i, unsigned long long begin) {
  s.ns[i] += clock64() - begin;
  s.clk[i] += 1;
}

__device__ __forceinline__ void commit(const Stamps& s, int tag) {
  if (g_buffer == nullptr) return;
  const unsigned long long r = atomicAdd(g_buffer, 1ull);
  if (r >= g_capacity) return;
  unsigned long long* rec = g_buffer + (r + 1) * kTraceWords;
  uint32_t smid;
  asm volatile("mov.u32 %0, %%smid;" : "=r"(smid));
  rec[0] = static_cast<unsigned long long>(tag);
  rec[1] = (static_cast<unsigned long long>(smid) << 48) |
           (static_cast<unsigned long long>(blockIdx.y) << 24) | blockIdx.x;
  for (int i = 0; i < kTracePoints; ++i) {
    rec[2 + 2 * i] = s.ns[i];
    rec[3 + 2 * i] = s.clk[i];
  }
}

// Reads SFM_PHASE_TRACE_PTR / SFM_PHASE_TRACE_RECORDS once, on the first launch (which
// must not be under graph capture).
inline void bind_from_env() {
  static bool bound = false;
  if (bound) return;
  bound = true;
  const char* ptr = std::getenv("SFM_PHASE_TRACE_PTR");
  const char* cap = std::getenv("SFM_PHASE_TRACE_RECORDS");
  if (ptr == nullptr || cap == nullptr) return;
  unsigned long long* p =
      reinterpret_cast<unsigned long long*>(std::strtoull(ptr, nullptr, 10));
  const unsigned long long c = std::strtoull(cap, nullptr, 10);
  cudaMemcpyToSymbol(g_buffer, &p, sizeof(p));
  cudaMemcpyToSymbol(g_capacity, &c, sizeof(c));
}

// The stamps live in registers (static shared memory would count against the 227 KB
// of dynamic shared memory the register-sourced wgmma kernel asks for, and its launch
// failed); in a kernel held to 168 registers (3 CTAs per SM) they spill to local memory.
#define SFM_TRACE_DECLARE ::static_fp8_mlp::phase_trace::Stamps sfm_trace_stamps{}
// Stamped and committed by thread `t` of the CTA (thread 0 in the plain forms).
#define SFM_TRACE_POINT_BY(t, i, ...) \
  if (threadIdx.x == (t)) ::static_fp8_mlp::phase_trace::stamp(sfm_trace_stamps, i, ##__VA_ARGS__)
#define SFM_TRACE_COMMIT_BY(t, tag) \
  if (threadIdx.x == (t)) ::static_fp8_mlp::phase_trace::commit(sfm_trace_stamps, tag)
#define SFM_TRACE_POINT(i, ...) SFM_TRACE_POINT_BY(0, i, ##__VA_ARGS__)
#define SFM_TRACE_COMMIT(tag) SFM_TRACE_COMMIT_BY(0, tag)
#define SFM_TRACE_BIND() ::static_fp8_mlp::phase_trace::bind_from_env()
// Span i of thread `t` (needs SFM_TRACE_SPANS_DECLARE after SFM_TRACE_DECLARE).
#define SFM_TRACE_SPANS_DECLARE \
  unsigned long long sfm_trace_span_begin[::static_fp8_mlp::phase_trace::kTracePoints] = {}
#define SFM_TRACE_SPAN_BEGIN_BY(t, i) \
  if (threadIdx.x == (t)) sfm_trace_span_begin[i] = clock64()
#define SFM_TRACE_SPAN_END_BY(t, i) \
  if (threadIdx.x == (t))           \
  ::static_fp8_mlp::phase_trace::close_span(sfm_trace_stamps, i, sfm_trace_span_begin[i])
#else
#define SFM_TRACE_DECLARE
#define SFM_TRACE_POINT_BY(t, i, ...)
#define SFM_TRACE_COMMIT_BY(t, tag)
#define SFM_TRACE_POINT(i, ...)
#define SFM_TRACE_COMMIT(tag)
#define SFM_TRACE_BIND()
#define SFM_TRACE_SPANS_DECLARE
#define SFM_TRACE_SPAN_BEGIN_BY(t, i)
#define SFM_TRACE_SPAN_END_BY(t, i)
#endif

}  // namespace phase_trace
}  // namespace
}  // namespace static_fp8_mlp
