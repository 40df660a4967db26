// How fast can one CTA per SM stream a weight matrix from DRAM into a shared-memory ring,
// depending on how the bulk copies are shaped? (No math: consumers only release slots.)
//
// The decode GEMMs (kernels-src/fp8_gemm_stream.cuh) stream [rows, K] FP8 weights with
// 3-D TMA boxes of 128-byte rows (the 128-byte swizzle caps a box row at 128 bytes), and
// reach ~3 TB/s where a plain load kernel reaches ~3.8 (scripts/read_ceiling.py). This
// probe separates the copy engine from the GEMM:
//   mode 0  3-D box {128 B, 64 rows, 4 blocks}: the kernel's order (a block of every row,
//           then the next block), 32 KB per stage
//   mode 1  3-D box {128 B, 4 blocks, 64 rows}: the same bytes, row by row (512 B runs)
//   mode 2  one 1-D bulk copy (cp.async.bulk) of 32 KB per stage: 16 whole rows
//   mode 3  2-D box {256 B, 128 rows}, no swizzle
//   mode 4  mode 0 with each CTA starting its K walk at its own block (rotated): at any
//           moment the CTAs read different offsets within the rows. No faster (lent
//           H200, twenty-fourth session: 19.3 against 19.1 us at K = 2048, 64 MiB;
//           results/k_rotate_*). At K = 16384 only 32 CTAs get a 64-row tile in modes
//           0, 1 and 4: their times there measure that, not the box shape.
//
//   nvcc -std=c++17 -O3 -arch=sm_90a -o /tmp/tma_stream_probe benchmarks/tma_stream_probe.cu
//   /tmp/tma_stream_probe [K=2048] [MiB=64]
#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "probe_check.h"
#include "probe_ring.h"

constexpr int kStageBytes = 32 * 1024;
constexpr int kStages = 6;
constexpr int kConsumerWarps = 4;

// Stage s of the whole matrix (stages ordered as the GEMM walks them: 64-row tiles, K
// blocks of 512 bytes inside a tile; mode 2/3 tiles are whole rows).
template <int MODE>
__global__ void __launch_bounds__(32 * (kConsumerWarps + 1), 1)
    stream_kernel(const __grid_constant__ CUtensorMap map, const uint8_t* w, int k, int stages_total,
                  int* sink) {
  extern __shared__ __align__(1024) uint8_t smem_raw[];
  uint8_t* ring = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));
  uint64_t* full = reinterpret_cast<uint64_t*>(ring + kStages * kStageBytes);
  uint64_t* empty = full + kStages;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (threadIdx.x == 0) {
    for (int s = 0; s < kStages; ++s) {
      mbar_init(&full[s], 1);
      mbar_init(&empty[s], kConsumerWarps);
    }
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();
  const int stages_per_tile = (MODE <= 1 || MODE == 4) ? k / 512 : 1;
  const int tiles = stages_total / stages_per_tile;
  const int my_tiles = blockIdx.x < tiles ? (tiles - 1 - blockIdx.x) / gridDim.x + 1 : 0;
  const int iters = my_tiles * stages_per_tile;
  if (warp == kConsumerWarps) {
    if (lane == 0) {
      for (int it = 0; it < iters; ++it) {
        const int slot = it % kStages;
        if (it >= kStages) mbar_wait(&empty[slot], ((it / kStages) - 1) & 1);
        const int tile = blockIdx.x + (it / stages_per_tile) * gridDim.x;
        int kb = it % stages_per_tile;
        if constexpr (MODE == 4) kb = (kb + blockIdx.x) % stages_per_tile;
        uint8_t* dst = ring + slot * kStageBytes;
        mbar_expect_tx(&full[slot], kStageBytes);
        if constexpr (MODE == 0 || MODE == 4) tma_load_3d(dst, &map, &full[slot], 0, tile * 64, kb * 4);
        if constexpr (MODE == 1) tma_load_3d(dst, &map, &full[slot], 0, kb * 4, tile * 64);
        if constexpr (MODE == 2) bulk1d(dst, w + int64_t(tile) * kStageBytes, kStageBytes, &full[slot]);
        if constexpr (MODE == 3) tma_load_2d(dst, &map, &full[slot], (tile % (k / 256)) * 256, (tile / (k / 256)) * 128);
      }
    }
  } else {
    int acc = 0;
    for (int it = 0; it < iters; ++it) {
      const int slot = it % kStages;
      mbar_wait(&full[slot], (it / kStages) & 1);
      acc += ring[slot * kStageBytes + threadIdx.x * 64];
      __syncwarp();
      if (lane == 0) mbar_arrive(&empty[slot]);
    }
    if (acc == 0x7fffffff) *sink = acc;
  }
}

static CUtensorMap make_map(int mode, uint8_t* w, int64_t rows, int64_t k) {
  if (static_fp8_mlp::tma::encode_fn() == nullptr) {
    std::fprintf(stderr, "cuTensorMapEncodeTiled is not available from the driver\n");
    std::exit(1);
  }
  CUtensorMap m{};
  CUresult r;
  if (mode == 0 || mode == 4) {
    cuuint64_t dims[3] = {128, cuuint64_t(rows), cuuint64_t(k / 128)};
    cuuint64_t strides[2] = {cuuint64_t(k), 128};
    cuuint32_t box[3] = {128, 64, 4};
    r = static_fp8_mlp::tma::encode_u8_swizzled(&m, 3, w, dims, strides, box);
  } else if (mode == 1) {
    cuuint64_t dims[3] = {128, cuuint64_t(k / 128), cuuint64_t(rows)};
    cuuint64_t strides[2] = {128, cuuint64_t(k)};
    cuuint32_t box[3] = {128, 4, 64};
    r = static_fp8_mlp::tma::encode_u8_swizzled(&m, 3, w, dims, strides, box);
  } else {
    cuuint64_t dims[2] = {cuuint64_t(k), cuuint64_t(rows)};
    cuuint64_t strides[1] = {cuuint64_t(k)};
    cuuint32_t box[2] = {256, 128};
    const cuuint32_t es[2] = {1, 1};
    r = static_fp8_mlp::tma::encode_fn()(&m, CU_TENSOR_MAP_DATA_TYPE_UINT8, 2, w, dims, strides,
                                         box, es, CU_TENSOR_MAP_INTERLEAVE_NONE,
                                         CU_TENSOR_MAP_SWIZZLE_NONE, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                                         CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  }
  if (r != CUDA_SUCCESS) {
    std::fprintf(stderr, "tensor map (mode %d) failed: %d\n", mode, int(r));
    std::exit(1);
  }
  return m;
}

template <int MODE>
static float run(std::vector<uint8_t*>& bufs, int64_t rows, int k, int sms, int* sink, int reps) {
  const int smem = kStages * kStageBytes + 1024 + 2 * kStages * 8;
  CHECK(cudaFuncSetAttribute(stream_kernel<MODE>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  std::vector<CUtensorMap> maps;
  for (auto* b : bufs) maps.push_back(make_map(MODE, b, rows, k));
  const int stages_total = int(rows * k / kStageBytes);
  auto launch = [&](int i) {
    stream_kernel<MODE><<<sms, 32 * (kConsumerWarps + 1), smem>>>(maps[i % maps.size()],
                                                                 bufs[i % bufs.size()], k,
                                                                 stages_total, sink);
  };
  for (int i = 0; i < 4; ++i) launch(i);
  CHECK(cudaDeviceSynchronize());
  cudaEvent_t a, b;
  CHECK(cudaEventCreate(&a));
  CHECK(cudaEventCreate(&b));
  CHECK(cudaEventRecord(a));
  for (int i = 0; i < reps; ++i) launch(i);
  CHECK(cudaEventRecord(b));
  CHECK(cudaEventSynchronize(b));
  CHECK(cudaGetLastError());
  float ms = 0;
  CHECK(cudaEventElapsedTime(&ms, a, b));
  return ms * 1000 / reps;
}

int main(int argc, char** argv) {
  const int k = argc > 1 ? std::atoi(argv[1]) : 2048;
  const int mib = argc > 2 ? std::atoi(argv[2]) : 64;
  const int64_t rows = (int64_t(mib) << 20) / k;
  int sms = 0;
  CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  std::vector<uint8_t*> bufs(4);
  for (auto& b : bufs) {
    CHECK(cudaMalloc(&b, rows * k));
    CHECK(cudaMemset(b, 1, rows * k));
  }
  int* sink;
  CHECK(cudaMalloc(&sink, 4));
  const char* names[5] = {"3-D box {128 B, 64 rows, 4 blocks} (kernel order)",
                          "3-D box {128 B, 4 blocks, 64 rows} (row by row)",
                          "1-D bulk copy, 32 KB contiguous", "2-D box {256 B, 128 rows}, no swizzle",
                          "mode 0, K walk rotated per CTA"};
  for (int round = 0; round < 2; ++round) {
    float t[5] = {run<0>(bufs, rows, k, sms, sink, 20), run<1>(bufs, rows, k, sms, sink, 20),
                  run<2>(bufs, rows, k, sms, sink, 20), run<3>(bufs, rows, k, sms, sink, 20),
                  run<4>(bufs, rows, k, sms, sink, 20)};
    for (int m = 0; m < 5; ++m) {
      std::printf("K=%d %d MiB mode %d %-52s %8.2f us %6.3f TB/s\n", k, mib, m, names[m], t[m],
                  double(rows * k) / (t[m] * 1e-6) / 1e12);
    }
  }
  return 0;
}
