// Hopper (sm_90a) FP8 GEMM with the fused MLP epilogues: TMA loads into a
// multi-stage shared-memory ring guarded by mbarriers, one producer warp and two
// consumer warpgroups issuing wgmma (m64nNk32, N = 64, 128 or 192, e4m3), and the epilogue
// applied to the accumulators in registers. CTAs are persistent (one per SM, looping
// over output tiles) and the producer keeps loading the next tile while the consumers
// run the epilogue; each consumer warpgroup stages and stores its own part of the tile,
// so one warpgroup's epilogue can overlap the other's mainloop.
//
// Precision: Hopper's FP8 wgmma accumulates with fewer mantissa bits than fp32, which
// over K = 14336 exceeds the contract's 1e-2. Each group of 128-element K tiles is
// therefore accumulated by wgmma from zero and then added into fp32 registers
// ("promotion"), which needs two accumulator sets: N = 64, 128 or 192 weight rows per
// warpgroup (N registers of the 232 a consumer thread gets).
//
// Orientation: tokens are the M operand (128 per CTA, 64 per consumer warpgroup; or, for
// batches up to 64, 64 tokens shared by both warpgroups), weight rows the N operand
// (64, 128 or 192 shared by both warpgroups, or 128 per warpgroup in the wide shape). For
// the gated GEMM1 a warpgroup's N weight rows are N/2 gate rows and the matching N/2 up
// rows, loaded by two TMA boxes into adjacent halves of the B tile, so accumulator
// columns j and j + N/2 of one thread are gate and up of the same hidden unit: the
// SwiGLU/GeGLU epilogue stays in registers and writes the FP8 hidden directly.
#pragma once

#include <cuda.h>
#include <cuda_bf16.h>
#include <cudaTypedefs.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <mutex>

#include "backend_registry.h"
#include "common.cuh"
#include "fp8_convert.cuh"
#include "mlp_epilogues.cuh"
#include "phase_trace.cuh"
#include "tma_util.cuh"

// Internal linkage: this file is included by one TU only, but keep the same rule as the
// portable kernels (each arch group gets its own copy).
namespace static_fp8_mlp {
namespace {
namespace wgmma_gemm {

using namespace tma;

constexpr int kBK = 128;            // bytes of K per stage (= one 128-byte swizzle row)
constexpr int kConsumers = 2;       // consumer warpgroups
constexpr int kThreads = 128 * (kConsumers + 1);

#ifndef SFM_WGMMA_RASTER_GROUP  // token tiles swept together (4 and 16 measured no better)
#define SFM_WGMMA_RASTER_GROUP 8
#endif
constexpr int kRasterGroupM = SFM_WGMMA_RASTER_GROUP;

// K tiles (of 128) accumulated by wgmma before the fp32 promotion (see the top comment),
// and in the first group of a tile, which overlaps the previous tile's epilogue.
#ifndef SFM_WGMMA_PROMOTE_TILES
#define SFM_WGMMA_PROMOTE_TILES 2
#endif
#ifndef SFM_WGMMA_FIRST_GROUP_TILES
#define SFM_WGMMA_FIRST_GROUP_TILES 2
#endif
static_assert(SFM_WGMMA_FIRST_GROUP_TILES >= SFM_WGMMA_PROMOTE_TILES, "issue_group unrolls to it");
// The wide (small-batch, memory-bound) shape promotes every K tile: at 2 a GeGLU-sized
// M = 1 gated MLP (K = 2048, H = 16384) missed the contract's 1e-2 (1.05e-2) once this
// kernel took decode batches; promotion costs nothing measurable where bytes bound the time.
#ifndef SFM_WGMMA_WIDE_PROMOTE_TILES
#define SFM_WGMMA_WIDE_PROMOTE_TILES 1
#endif

#ifndef SFM_WGMMA_CLUSTER  // 2: tall-shape CTAs in pairs that share the weight tile (multicast)
#define SFM_WGMMA_CLUSTER 2
#endif
// 0: ... not where x's rows are padded (p.x_pitch; only the weight rows straddle L2
// lines then). Measured slower than the pairs with padded x (the dense 1152x4304 /
// 1536x4304 MLPs at M = 4096 and 8192 +6.9 to +12.1 us, 2048 +0.1 / +3.7; faster only at
// M = 1024: -1.2 / -0.2; scripts/mlp_ab.py, H200, twenty-seventh session).
#ifndef SFM_WGMMA_PAIR_PADDED
#define SFM_WGMMA_PAIR_PADDED 1
#endif

// Gated gate/up GEMMs up to this many tokens (CTAs without a cluster) load their first
// weight stages before they wait for the previous kernel; 0: never. Down GEMMs up to
// kMaxTriggerTokens let the next kernel launch as they start.
#ifndef SFM_WGMMA_EARLY_GATED_TOKENS
#define SFM_WGMMA_EARLY_GATED_TOKENS 64
#endif
#ifndef SFM_WGMMA_PDL  // 1: both GEMMs are programmatic dependent launches (small M)
#define SFM_WGMMA_PDL 1
#endif
constexpr int kMaxPdlTokens = 512;
constexpr int kMaxTriggerTokens = 64;

// Two CTA shapes. Tall (large batches): 128 tokens (64 per consumer warpgroup) x BN
// shared weight rows. Wide (batches up to kMaxWideTokens): 64 tokens shared by both
// warpgroups x 2 * BN weight rows (BN each): a small batch does not pay for 128-token
// tiles of mostly padding, and each CTA covers twice the weight rows. BN is the wgmma N
// (64, 128 or 192); the two accumulator sets of the promotion take BN registers per thread.
template <bool WIDE, int BN>
struct Shape {
  static constexpr int kBN = BN;                            // weight rows per warpgroup
  static constexpr int kBM = WIDE ? 64 : 128;               // tokens per CTA
  static constexpr int kRows = WIDE ? 2 * kBN : kBN;        // weight rows per CTA
  static constexpr int kTileABytes = kBM * kBK;
  static constexpr int kTileBBytes = kRows * kBK;
  static constexpr int kStageBytes = kTileABytes + kTileBBytes;
  static constexpr int kMaxStages = WIDE ? 5 : 6;
};

constexpr int kMaxDynamicSmem = 227 * 1024;  // sm_90 opt-in limit per block

// The output tiles a cluster of the tall kernel works on together (one per CTA): CLUSTER
// token tiles of the same weight rows, or (SHARE_X) CLUSTER weight tiles of the same
// token tile.
template <int CLUSTER, bool SHARE_X>
struct ClusterUnit {
  static constexpr int kTokenTiles = SHARE_X ? 1 : CLUSTER;
  static constexpr int kWeightTiles = SHARE_X ? CLUSTER : 1;
};

// Shared memory of one instantiation: the TMA ring, then the epilogue staging tile.
// CTAs are persistent (one per SM, looping over output tiles), so the staging tile has
// its own space: the producer refills the ring with the next tile's operands while the
// consumers run this tile's epilogue. The split-K kernel runs one tile per CTA and
// stages in the (then idle) ring, which keeps its five stages.
template <EpilogueKind EPI, bool WIDE, bool SPLIT, int BN = 128>
struct Plan {
  using S = Shape<WIDE, BN>;
  static constexpr bool kGated = EPI == EpilogueKind::kGatedToFp8;
  static constexpr int kWgCols = kGated ? S::kBN / 2 : S::kBN;  // output columns per consumer warpgroup
  static constexpr int kOutCols = WIDE ? 2 * kWgCols : kWgCols;  // output columns per CTA
  static constexpr int kOutBytes = SPLIT ? 4 : EPI == EpilogueKind::kBiasToBf16 ? 2 : 1;
  static constexpr int kPitch = kOutCols * kOutBytes + 16;  // +16: conflict-free pair writes
  static constexpr bool kPersistent = !SPLIT;
  static constexpr int kStagingBytes = kPersistent ? S::kBM * kPitch : 0;
  static constexpr int kBarrierBytes = 2 * S::kMaxStages * 8;
  static constexpr int kStages =
      std::min(S::kMaxStages,
               (kMaxDynamicSmem - 1024 - kStagingBytes - kBarrierBytes) / S::kStageBytes);
  static constexpr int kRingBytes = kStages * S::kStageBytes;
  static constexpr int kSmemBytes = kRingBytes + kStagingBytes + kBarrierBytes + 1024 /* align */;
  static_assert(kStages >= 3, "shared memory too small for the ring");
  static_assert(kPersistent || S::kBM * kPitch <= kRingBytes, "staging must fit in the ring");
};

SFM_DEVICE void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
SFM_DEVICE void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
SFM_DEVICE void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}

// Named barriers of the consumer warpgroups: 1 + cw for warpgroup cw alone, 3 for both.
SFM_DEVICE void warpgroup_barrier(int id) {
  asm volatile("bar.sync %0, 128;\n" ::"r"(id) : "memory");
}
SFM_DEVICE void consumers_barrier() {
  asm volatile("bar.sync 3, %0;\n" ::"n"(128 * kConsumers) : "memory");
}

// Shared-memory matrix descriptor for a K-major tile in the 128-byte swizzle layout
// TMA writes: rows of 128 bytes, 8-row (1024-byte) swizzle atoms.
SFM_DEVICE uint64_t smem_desc(const void* tile) {
  const uint64_t addr = smem_u32(tile);
  uint64_t desc = 0;
  desc |= (addr & 0x3ffff) >> 4;          // start address
  desc |= uint64_t(1) << 16;              // leading byte offset (unused for swizzled K-major)
  desc |= uint64_t(1024 >> 4) << 32;      // stride byte offset: one 8-row atom
  desc |= uint64_t(1) << 62;              // 128-byte swizzle
  return desc;
}

// Accumulator operands of the wgmma wrappers (here and in fp8_gemm_wgmma_rs.cuh), eight
// at a time: one "+f" register per accumulator element (inline asm takes no arrays).
#define SFM_WGMMA_ACC8(i)                                                                  \
  "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), \
      "+f"(d[i + 6]), "+f"(d[i + 7])
#define SFM_WGMMA_ACC4(i) "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3])
#define SFM_WGMMA_ACC64                                                                      \
  SFM_WGMMA_ACC8(0), SFM_WGMMA_ACC8(8), SFM_WGMMA_ACC8(16), SFM_WGMMA_ACC8(24),             \
      SFM_WGMMA_ACC8(32), SFM_WGMMA_ACC8(40), SFM_WGMMA_ACC8(48), SFM_WGMMA_ACC8(56)

// wgmma m64n128k32, e4m3 x e4m3 -> f32, A and B from shared memory (K-major, 128B
// swizzle). scale_d = 0 overwrites the accumulators, 1 accumulates into them.
SFM_DEVICE void wgmma_m64n128k32(float (&d)[64], uint64_t desc_a, uint64_t desc_b,
                                int scale_d) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
      "%64, %65, p, 1, 1;\n"
      "}\n"
      : SFM_WGMMA_ACC64
      : "l"(desc_a), "l"(desc_b), "r"(scale_d));
}

// The same with N = 192 (96 accumulators per thread).
SFM_DEVICE void wgmma_m64n192k32(float (&d)[96], uint64_t desc_a, uint64_t desc_b,
                                int scale_d) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %98, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n192k32.f32.e4m3.e4m3 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95}, "
      "%96, %97, p, 1, 1;\n"
      "}\n"
      : SFM_WGMMA_ACC64, SFM_WGMMA_ACC8(64), SFM_WGMMA_ACC8(72), SFM_WGMMA_ACC8(80),
        SFM_WGMMA_ACC8(88)
      : "l"(desc_a), "l"(desc_b), "r"(scale_d));
}

// The same with N = 64 (32 accumulators): the tall shape's 64-row tiles.
SFM_DEVICE void wgmma_m64n64k32(float (&d)[32], uint64_t desc_a, uint64_t desc_b, int scale_d) {
  asm volatile(
      "{\n .reg .pred p;\n setp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k32.f32.e4m3.e4m3 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, "
      "%18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, "
      "1, 1;\n}\n"
      : SFM_WGMMA_ACC8(0), SFM_WGMMA_ACC8(8), SFM_WGMMA_ACC8(16), SFM_WGMMA_ACC8(24)
      : "l"(desc_a), "l"(desc_b), "r"(scale_d));
}

// The small-N shapes, for the weight-streaming kernel's 16- and 32-token tiles.
SFM_DEVICE void wgmma_m64n16k32(float (&d)[8], uint64_t desc_a, uint64_t desc_b, int scale_d) {
  asm volatile(
      "{\n .reg .pred p;\n setp.ne.b32 p, %10, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n16k32.f32.e4m3.e4m3 "
      "{%0, %1, %2, %3, %4, %5, %6, %7}, %8, %9, p, 1, 1;\n}\n"
      : SFM_WGMMA_ACC8(0)
      : "l"(desc_a), "l"(desc_b), "r"(scale_d));
}

SFM_DEVICE void wgmma_m64n32k32(float (&d)[16], uint64_t desc_a, uint64_t desc_b, int scale_d) {
  asm volatile(
      "{\n .reg .pred p;\n setp.ne.b32 p, %18, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n32k32.f32.e4m3.e4m3 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15}, %16, %17, p, "
      "1, 1;\n}\n"
      : SFM_WGMMA_ACC8(0), SFM_WGMMA_ACC8(8)
      : "l"(desc_a), "l"(desc_b), "r"(scale_d));
}

// The swap-AB kernel's token tiles of 8 to 56 (fp8_gemm_swap.cuh), with n16 and n32 above.
SFM_DEVICE void wgmma_m64n8k32(float (&d)[4], uint64_t desc_a, uint64_t desc_b, int scale_d) {
  asm volatile(
      "{\n .reg .pred p;\n setp.ne.b32 p, %6, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n8k32.f32.e4m3.e4m3 "
      "{%0, %1, %2, %3}, %4, %5, p, 1, 1;\n}\n"
      : SFM_WGMMA_ACC4(0)
      : "l"(desc_a), "l"(desc_b), "r"(scale_d));
}

SFM_DEVICE void wgmma_m64n24k32(float (&d)[12], uint64_t desc_a, uint64_t desc_b, int scale_d) {
  asm volatile(
      "{\n .reg .pred p;\n setp.ne.b32 p, %14, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n24k32.f32.e4m3.e4m3 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11}, %12, %13, p, 1, 1;\n}\n"
      : SFM_WGMMA_ACC8(0), SFM_WGMMA_ACC4(8)
      : "l"(desc_a), "l"(desc_b), "r"(scale_d));
}

SFM_DEVICE void wgmma_m64n40k32(float (&d)[20], uint64_t desc_a, uint64_t desc_b, int scale_d) {
  asm volatile(
      "{\n .reg .pred p;\n setp.ne.b32 p, %22, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n40k32.f32.e4m3.e4m3 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19}, %20, %21, p, 1, 1;\n}\n"
      : SFM_WGMMA_ACC8(0), SFM_WGMMA_ACC8(8), SFM_WGMMA_ACC4(16)
      : "l"(desc_a), "l"(desc_b), "r"(scale_d));
}

SFM_DEVICE void wgmma_m64n48k32(float (&d)[24], uint64_t desc_a, uint64_t desc_b, int scale_d) {
  asm volatile(
      "{\n .reg .pred p;\n setp.ne.b32 p, %26, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n48k32.f32.e4m3.e4m3 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23}, %24, %25, p, 1, 1;\n}\n"
      : SFM_WGMMA_ACC8(0), SFM_WGMMA_ACC8(8), SFM_WGMMA_ACC8(16)
      : "l"(desc_a), "l"(desc_b), "r"(scale_d));
}

SFM_DEVICE void wgmma_m64n56k32(float (&d)[28], uint64_t desc_a, uint64_t desc_b, int scale_d) {
  asm volatile(
      "{\n .reg .pred p;\n setp.ne.b32 p, %30, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n56k32.f32.e4m3.e4m3 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27}, %28, %29, p, 1, 1;\n}\n"
      : SFM_WGMMA_ACC8(0), SFM_WGMMA_ACC8(8), SFM_WGMMA_ACC8(16), SFM_WGMMA_ACC4(24)
      : "l"(desc_a), "l"(desc_b), "r"(scale_d));
}

// The swap-AB kernel's token tiles (fp8_gemm_swap.cuh): N = 80 .. 176 in steps of 16.
SFM_DEVICE void wgmma_m64n80k32(float (&d)[40], uint64_t desc_a, uint64_t desc_b,
                                int scale_d) {
  asm volatile(
      "{\n .reg .pred p;\n setp.ne.b32 p, %42, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n80k32.f32.e4m3.e4m3 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39}, %40, %41, p, 1, 1;\n}\n"
      : SFM_WGMMA_ACC8(0), SFM_WGMMA_ACC8(8), SFM_WGMMA_ACC8(16), SFM_WGMMA_ACC8(24), SFM_WGMMA_ACC8(32)
      : "l"(desc_a), "l"(desc_b), "r"(scale_d));
}

SFM_DEVICE void wgmma_m64n96k32(float (&d)[48], uint64_t desc_a, uint64_t desc_b,
                                int scale_d) {
  asm volatile(
      "{\n .reg .pred p;\n setp.ne.b32 p, %50, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n96k32.f32.e4m3.e4m3 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47}, %48, %49, p, 1, 1;\n}\n"
      : SFM_WGMMA_ACC8(0), SFM_WGMMA_ACC8(8), SFM_WGMMA_ACC8(16), SFM_WGMMA_ACC8(24), SFM_WGMMA_ACC8(32), SFM_WGMMA_ACC8(40)
      : "l"(desc_a), "l"(desc_b), "r"(scale_d));
}

SFM_DEVICE void wgmma_m64n112k32(float (&d)[56], uint64_t desc_a, uint64_t desc_b,
                                int scale_d) {
  asm volatile(
      "{\n .reg .pred p;\n setp.ne.b32 p, %58, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n112k32.f32.e4m3.e4m3 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55}, %56, %57, p, 1, 1;\n}\n"
      : SFM_WGMMA_ACC8(0), SFM_WGMMA_ACC8(8), SFM_WGMMA_ACC8(16), SFM_WGMMA_ACC8(24), SFM_WGMMA_ACC8(32), SFM_WGMMA_ACC8(40), SFM_WGMMA_ACC8(48)
      : "l"(desc_a), "l"(desc_b), "r"(scale_d));
}

SFM_DEVICE void wgmma_m64n144k32(float (&d)[72], uint64_t desc_a, uint64_t desc_b,
                                int scale_d) {
  asm volatile(
      "{\n .reg .pred p;\n setp.ne.b32 p, %74, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n144k32.f32.e4m3.e4m3 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71}, %72, %73, p, 1, 1;\n}\n"
      : SFM_WGMMA_ACC8(0), SFM_WGMMA_ACC8(8), SFM_WGMMA_ACC8(16), SFM_WGMMA_ACC8(24), SFM_WGMMA_ACC8(32), SFM_WGMMA_ACC8(40), SFM_WGMMA_ACC8(48), SFM_WGMMA_ACC8(56), SFM_WGMMA_ACC8(64)
      : "l"(desc_a), "l"(desc_b), "r"(scale_d));
}

SFM_DEVICE void wgmma_m64n160k32(float (&d)[80], uint64_t desc_a, uint64_t desc_b,
                                int scale_d) {
  asm volatile(
      "{\n .reg .pred p;\n setp.ne.b32 p, %82, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n160k32.f32.e4m3.e4m3 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79}, %80, %81, p, 1, 1;\n}\n"
      : SFM_WGMMA_ACC8(0), SFM_WGMMA_ACC8(8), SFM_WGMMA_ACC8(16), SFM_WGMMA_ACC8(24), SFM_WGMMA_ACC8(32), SFM_WGMMA_ACC8(40), SFM_WGMMA_ACC8(48), SFM_WGMMA_ACC8(56), SFM_WGMMA_ACC8(64), SFM_WGMMA_ACC8(72)
      : "l"(desc_a), "l"(desc_b), "r"(scale_d));
}

SFM_DEVICE void wgmma_m64n176k32(float (&d)[88], uint64_t desc_a, uint64_t desc_b,
                                int scale_d) {
  asm volatile(
      "{\n .reg .pred p;\n setp.ne.b32 p, %90, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n176k32.f32.e4m3.e4m3 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87}, %88, %89, p, 1, 1;\n}\n"
      : SFM_WGMMA_ACC8(0), SFM_WGMMA_ACC8(8), SFM_WGMMA_ACC8(16), SFM_WGMMA_ACC8(24), SFM_WGMMA_ACC8(32), SFM_WGMMA_ACC8(40), SFM_WGMMA_ACC8(48), SFM_WGMMA_ACC8(56), SFM_WGMMA_ACC8(64), SFM_WGMMA_ACC8(72), SFM_WGMMA_ACC8(80)
      : "l"(desc_a), "l"(desc_b), "r"(scale_d));
}

// wgmma m64 x N x k32 with both operands in shared memory, by N.
template <int N>
SFM_DEVICE void wgmma_m64nk32(float (&d)[N / 2], uint64_t desc_a, uint64_t desc_b, int scale_d) {
  static_assert((N % 16 == 0 || N < 64) && N % 8 == 0 && N >= 8 && N <= 192, "wgmma N");
  if constexpr (N == 8) {
    wgmma_m64n8k32(d, desc_a, desc_b, scale_d);
  } else if constexpr (N == 16) {
    wgmma_m64n16k32(d, desc_a, desc_b, scale_d);
  } else if constexpr (N == 32) {
    wgmma_m64n32k32(d, desc_a, desc_b, scale_d);
  } else if constexpr (N == 24) {
    wgmma_m64n24k32(d, desc_a, desc_b, scale_d);
  } else if constexpr (N == 40) {
    wgmma_m64n40k32(d, desc_a, desc_b, scale_d);
  } else if constexpr (N == 48) {
    wgmma_m64n48k32(d, desc_a, desc_b, scale_d);
  } else if constexpr (N == 56) {
    wgmma_m64n56k32(d, desc_a, desc_b, scale_d);
  } else if constexpr (N == 64) {
    wgmma_m64n64k32(d, desc_a, desc_b, scale_d);
  } else if constexpr (N == 80) {
    wgmma_m64n80k32(d, desc_a, desc_b, scale_d);
  } else if constexpr (N == 96) {
    wgmma_m64n96k32(d, desc_a, desc_b, scale_d);
  } else if constexpr (N == 112) {
    wgmma_m64n112k32(d, desc_a, desc_b, scale_d);
  } else if constexpr (N == 128) {
    wgmma_m64n128k32(d, desc_a, desc_b, scale_d);
  } else if constexpr (N == 144) {
    wgmma_m64n144k32(d, desc_a, desc_b, scale_d);
  } else if constexpr (N == 160) {
    wgmma_m64n160k32(d, desc_a, desc_b, scale_d);
  } else if constexpr (N == 176) {
    wgmma_m64n176k32(d, desc_a, desc_b, scale_d);
  } else {
    wgmma_m64n192k32(d, desc_a, desc_b, scale_d);
  }
}

// ---------------------------------------------------------------- kernel

struct WgmmaParams {
  int m;
  int k;
  int n_out;  // H for the gated GEMM1 (w has 2H rows), else N
  void* out;
  EpilogueParams epi;
  int cluster_reduce = 0;  // split-K: the splits of a tile are one cluster (see below)
  // The swap-AB down GEMM and its reduce kernel let the next kernel launch as they start
  // (swap_gemm::triggers_next), not once their work is done.
  int trigger_next = 0;
  // Row pitches where a matrix is not packed (0: packed): x's in bytes, and the gate/up
  // GEMMs' FP8 output's in bytes (hopper::padded_hidden_pitch). Only the wgmma kernel's
  // launch (launch_shape) takes them; swap_gemm::launch_bt refuses them.
  int64_t x_pitch = 0;
  int64_t out_pitch = 0;
};

constexpr int kMaxClusterSplits = 8;  // portable cluster size

// The split-K epilogue, shared by split_k_reduce_kernel and split_cluster_reduce: v +=
// w lane by lane (their in-order sum of the splits), and out[0..3] = bf16(v * scale +
// bias) for the four output columns from `col`.
SFM_DEVICE void add_float4(float4& v, const float4& w) {
  v.x += w.x;
  v.y += w.y;
  v.z += w.z;
  v.w += w.w;
}

SFM_DEVICE void store_scaled_bf16x4(__nv_bfloat16* out, float4 v, const EpilogueParams& epi,
                                    float x_scale, int col) {
  float r[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    r[j] *= row_scale(epi, x_scale, col + j);
    if (epi.bias != nullptr) r[j] += __bfloat162float(epi.bias[col + j]);
  }
  const __nv_bfloat162 o[2] = {__floats2bfloat162_rn(r[0], r[1]), __floats2bfloat162_rn(r[2], r[3])};
  *reinterpret_cast<uint2*>(out) = *reinterpret_cast<const uint2*>(o);
}

// The split-K kernel's cluster reduction (p.cluster_reduce): the gridDim.y CTAs of an
// output tile are one cluster, each with its fp32 partial tile staged in shared memory
// (cluster rank = blockIdx.y = split). Rank r sums its share of the tile's 16-byte
// chunks over every rank in rank order, as split_k_reduce_kernel does, and applies the
// scales and bias: no workspace and no second kernel. Run by the consumer threads
// (thread = 0 .. 255); the producer warpgroup joins the two cluster barriers.
// The staged tile: kTileRows token rows of kTileCols fp32 columns, kPitch bytes apart
// (shared with the swap-AB down GEMM's cluster reduction).
template <int kTileRows, int kTileCols, int kPitch>
SFM_DEVICE void split_cluster_reduce(const WgmmaParams& p, const uint8_t* staging, int m0,
                                     int c0, int thread) {
  cluster_sync();  // every rank's partial tile is staged
  const int splits = static_cast<int>(gridDim.y);
  const int rank = static_cast<int>(blockIdx.y);
  const int rows = m0 < 0 ? 0 : min(kTileRows, p.m - m0);  // m0 < 0: no tile (barriers only)
  const int row_chunks = min(kTileCols, p.n_out - c0) / 4;  // n_out % 16 == 0
  const int chunks = rows * row_chunks;
  const int end = (rank + 1) * chunks / splits;
  const float x_scale = __ldg(p.epi.x_scale);
  const uint32_t base = smem_u32(staging);
  __nv_bfloat16* out = static_cast<__nv_bfloat16*>(p.out);
#pragma unroll 1
  for (int i = rank * chunks / splits + thread; i < end; i += 128 * kConsumers) {
    const int r = i / row_chunks;
    const int ch = i - r * row_chunks;
    const uint32_t at = base + r * kPitch + ch * 16;
    float4 part[kMaxClusterSplits];  // every rank's loads in flight at once
#pragma unroll
    for (int s = 0; s < kMaxClusterSplits; ++s) {
      if (s < splits) part[s] = load_peer(at, s);
    }
    float4 v = part[0];
#pragma unroll
    for (int s = 1; s < kMaxClusterSplits; ++s) {
      if (s < splits) add_float4(v, part[s]);
    }
    const int col = c0 + ch * 4;
    store_scaled_bf16x4(out + static_cast<int64_t>(m0 + r) * p.n_out + col, v, p.epi, x_scale,
                        col);
  }
  cluster_sync_relaxed();  // peers read this CTA's tile until here
}

// SPLIT (down GEMM, wide shape): gridDim.y CTAs split K per tile and write their raw fp32
// sums to a workspace, [split][m][n]; split_k_reduce_kernel adds them in a fixed order
// and applies the scales and bias (deterministic; no atomics, no zeroed memory). With
// p.cluster_reduce the splits of a tile are one cluster and add up over distributed
// shared memory instead (split_cluster_reduce), in the same order.
// CLUSTER = 2 (tall shape): the two CTAs of a cluster take adjacent token tiles of the
// same weight rows, and each loads half of the shared weight tile for both (TMA
// multicast), which cuts the operand bytes each CTA pulls through L2 by a quarter (128
// rows) to 30% (192). Their rings then run in lockstep: a stage is free for a refill
// once all four consumer warpgroups of the cluster are done with it. `launch` takes it
// only where K rows are not whole 128-byte lines (see there): elsewhere it was slower.
// SHARE_X (with CLUSTER = 2): the pair takes adjacent weight tiles of the same token tile
// instead, and each CTA loads half of the shared token tile for both (x multicast).
template <EpilogueKind EPI, Activation ACT, bool WIDE, bool SPLIT, int BN, int CLUSTER,
          bool SHARE_X = false>
__global__ void __launch_bounds__(kThreads, 1)
    fp8_gemm_wgmma_kernel(const __grid_constant__ CUtensorMap tma_x,
                          const __grid_constant__ CUtensorMap tma_w, const WgmmaParams p) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using P = Plan<EPI, WIDE, SPLIT, BN>;
  using S = typename P::S;
  constexpr int kBN = S::kBN;
  constexpr int kBM = S::kBM;
  constexpr int kStages = P::kStages;
  constexpr int kStageBytes = S::kStageBytes;
  constexpr int kTileABytes = S::kTileABytes;
  constexpr bool kGated = P::kGated;
  constexpr int kWgCols = P::kWgCols;
  constexpr int kOutCols = P::kOutCols;

  // Phase trace (probe builds only, scripts/phase_trace.py): the producer thread (0) and
  // the first consumer thread (128) each leave a record of spans (phase_trace.cuh):
  // producer 1 = waits for a free stage; consumer 1 = epilogues, 2 = their math up to
  // the staged tile, 3 = waits for full stages, 4 = waits for wgmmas, 5 = whole tiles.
  SFM_TRACE_DECLARE;
  SFM_TRACE_SPANS_DECLARE;
  SFM_TRACE_POINT_BY(0, 0);
  SFM_TRACE_POINT_BY(128, 0);
  extern __shared__ uint8_t smem_raw[];
  // TMA 128-byte swizzle needs 1024-byte aligned tiles. (Offsetting smem_raw rather than
  // rounding an integer keeps the pointer in the shared window: STS/LDS, not generic.)
  uint8_t* smem = smem_raw + ((1024u - (smem_u32(smem_raw) & 1023u)) & 1023u);
  uint8_t* staging = P::kPersistent ? smem + P::kRingBytes : smem;
  uint64_t* full = reinterpret_cast<uint64_t*>(smem + P::kRingBytes + P::kStagingBytes);
  uint64_t* empty = full + kStages;

  // Output tiles in grouped rasterisation: kRasterGroupM token tiles sweep the weight
  // tiles together. Work units are ClusterUnit's token tiles x weight tiles (one tile per
  // CTA of a cluster); clusters take units blockIdx.x / CLUSTER, + gridDim.x /
  // CLUSTER, ... (one CTA per SM). A cluster's last unit may have a tile past M or N (TMA
  // fills its rows with zeros; its stores are masked).
  static_assert(CLUSTER == 1 || (CLUSTER == 2 && !WIDE && !SPLIT), "clusters: tall shape");
  static_assert(!SHARE_X || CLUSTER == 2, "x multicast: pairs");
  constexpr int kClusterM = ClusterUnit<CLUSTER, SHARE_X>::kTokenTiles;
  constexpr int kClusterN = ClusterUnit<CLUSTER, SHARE_X>::kWeightTiles;
  static_assert(kRasterGroupM % kClusterM == 0, "whole units per raster group");
  const int rank = CLUSTER > 1 ? static_cast<int>(cluster_rank()) : 0;
  const int m_units = ((p.m + kBM - 1) / kBM + kClusterM - 1) / kClusterM;
  const int n_units = ((p.n_out + kOutCols - 1) / kOutCols + kClusterN - 1) / kClusterN;
  const int tiles = m_units * n_units;
  constexpr int kGroupUnits = kRasterGroupM / kClusterM;
  const int per_group = kGroupUnits * n_units;
  auto tile_origin = [&](int tile, int& m0, int& c0) {
    const int group = tile / per_group;
    const int first_unit = group * kGroupUnits;
    const int group_units = min(m_units - first_unit, kGroupUnits);
    const int in_group = tile - group * per_group;
    m0 = ((first_unit + in_group % group_units) * kClusterM + (SHARE_X ? 0 : rank)) * kBM;
    c0 = ((in_group / group_units) * kClusterN + (SHARE_X ? rank : 0)) * kOutCols;
  };
  const int first_tile = static_cast<int>(blockIdx.x) / CLUSTER;
  const int tile_stride = static_cast<int>(gridDim.x) / CLUSTER;

  const int warpgroup = threadIdx.x / 128;
  static_assert(!SPLIT || (WIDE && EPI == EpilogueKind::kBiasToBf16), "split-K: wide down GEMM");
  constexpr bool kGemm2Pdl = EPI == EpilogueKind::kBiasToBf16 && SFM_WGMMA_PDL;
  const int k_tiles_all = (p.k + kBK - 1) / kBK;
  const int kt_first = SPLIT ? static_cast<int>(blockIdx.y * k_tiles_all / gridDim.y) : 0;
  const int k_tiles =
      SPLIT ? static_cast<int>((blockIdx.y + 1) * k_tiles_all / gridDim.y) - kt_first
            : k_tiles_all;

  // Weight stages loaded before the wait for the previous kernel (weights are constant;
  // only x and the outputs depend on it): the down GEMM's first stages (kGemm2Pdl, in
  // the producer), and a gated gate/up GEMM's without a cluster at up to
  // SFM_WGMMA_EARLY_GATED_TOKENS tokens (here, before the kernel-wide wait), which pays
  // where the kernel before it let it launch early: with the down GEMMs' early triggers
  // (below, fp8_gemm_stream.cuh, swap_gemm::triggers_next) SwiGLU M = 1-16 -0.5 to -0.6
  // us, 50 / 64 -0.5 / -0.7; alone +0.2 to +0.5 (H200, scripts/mlp_ab.py,
  // benchmarks/RESULTS.md, twenty-third session).
  const bool gated_early = kGated && CLUSTER == 1 && p.m <= SFM_WGMMA_EARLY_GATED_TOKENS;
  const int early = (kGemm2Pdl || gated_early) && first_tile < tiles ? min(kStages, k_tiles) : 0;
  // The weight rows (B) of ring stage s without multicast: K tile kt of each consumer
  // warpgroup's kBN rows at output column c0 (gated: its kBN/2 gate rows, then the
  // matching kBN/2 up rows).
  auto load_weight_rows = [&](int s, int kt, int c0) {
    uint8_t* b_tile = smem + s * kStageBytes + kTileABytes;
    const int k0 = (kt_first + kt) * kBK;
#pragma unroll
    for (int g = 0; g < (WIDE ? 2 : 1); ++g) {
      uint8_t* b_wg = b_tile + g * kBN * kBK;
      const int cg = c0 + g * kWgCols;
      if constexpr (kGated) {
        tma_load_2d(b_wg, &tma_w, &full[s], k0, cg);                            // gate
        tma_load_2d(b_wg + kBN * kBK / 2, &tma_w, &full[s], k0, p.n_out + cg);  // up
      } else {
        tma_load_2d(b_wg, &tma_w, &full[s], k0, cg);
      }
    }
  };
  if (threadIdx.x == 0) {
    init_ring(full, empty, kStages, kConsumers * CLUSTER, &tma_x, &tma_w);
    if (gated_early && early > 0) {
      int m0, c0;
      tile_origin(first_tile, m0, c0);
      for (int kt = 0; kt < early; ++kt) {  // load_stage's B half, for CLUSTER == 1
        mbar_expect_tx(&full[kt], kStageBytes);  // the stage's x follows after the wait
        load_weight_rows(kt, kt, c0);
      }
    }
  }
  // The peer's multicast loads signal this CTA's barriers: initialised first.
  if constexpr (CLUSTER > 1) {
    cluster_sync();
  } else {
    __syncthreads();
  }
  if constexpr (EPI != EpilogueKind::kBiasToBf16) {
    // The gate/up GEMM may be a programmatic dependent launch itself (small M): its CTAs
    // set up while the previous kernel finishes, and nothing above reads global memory.
    // Then the down GEMM may launch; its CTAs take over multiprocessors as ours finish
    // and prefetch their weights (see the producer). Only after the wait: whatever the
    // previous kernel wrote (weights included) is visible to both.
    pdl_wait();
    pdl_trigger();
  } else if (p.m <= kMaxTriggerTokens) {
    // A decode-sized down GEMM lets the next kernel launch now (see gated_early above);
    // that kernel's own wait still waits for this grid to complete.
    pdl_trigger();
  }

  if (warpgroup == 0) {
    // ---------------- producer: one thread issues every TMA load, running ahead into the
    // next tile while the consumers finish this one (`it` counts stages over all tiles).
    asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n");
    if (threadIdx.x == 0) {
      // Stage `it` (K tile kt of the tile at m0, c0): the activations (A) and/or the
      // weight rows (B; per consumer warpgroup kBN rows; gated: its kBN/2 gate rows, then
      // the matching kBN/2 up rows). expect_tx goes with the B half.
      auto load_stage = [&](int it, int kt, int m0, int c0, bool a, bool b) {
        const int s = it % kStages;
        uint8_t* a_tile = smem + s * kStageBytes;
        uint8_t* b_tile = a_tile + kTileABytes;
        const int k0 = (kt_first + kt) * kBK;
        if (b && CLUSTER > 1 && !SHARE_X) {
          // Empty in both CTAs (the barrier counts the cluster's consumers). This CTA's
          // half of the weight rows (gated: the gate or the up rows) goes to both; the
          // other half comes from the peer, and the barrier expects the whole stage.
          SFM_TRACE_SPAN_BEGIN_BY(0, 1);
          mbar_wait(&empty[s], ((it / kStages) & 1) ^ 1);
          SFM_TRACE_SPAN_END_BY(0, 1);
          mbar_expect_tx(&full[s], kStageBytes);
          const int row = kGated ? rank * p.n_out + c0 : c0 + rank * (kBN / 2);
          tma_load_2d_multicast(b_tile + rank * (kBN / 2) * kBK, &tma_w, &full[s], k0, row,
                                (1u << CLUSTER) - 1);
        } else if (b) {
          SFM_TRACE_SPAN_BEGIN_BY(0, 1);
          mbar_wait(&empty[s], ((it / kStages) & 1) ^ 1);
          SFM_TRACE_SPAN_END_BY(0, 1);
          mbar_expect_tx(&full[s], kStageBytes);
          load_weight_rows(s, kt, c0);
        }
        if (a && SHARE_X) {
          // This CTA's half of the shared token rows goes to both (the peer sends the
          // other half); the B branch above set the barrier to expect the whole stage.
          constexpr int kHalf = kBM / 2;
          tma_load_2d_multicast(a_tile + rank * kHalf * kBK, &tma_x, &full[s], k0,
                                m0 + rank * kHalf, (1u << CLUSTER) - 1);
        } else if (a) {
          tma_load_2d(a_tile, &tma_x, &full[s], k0, m0);
        }
      };
      // The down GEMM is a programmatic dependent launch: it fetches the weights of its
      // first stages, then waits for the gate/up GEMM (griddepcontrol.wait) before the
      // first load of its activations, the FP8 hidden state.
      if (first_tile < tiles) {
        int m0, c0;
        tile_origin(first_tile, m0, c0);
        if constexpr (kGemm2Pdl) {
          for (int kt = 0; kt < early; ++kt) load_stage(kt, kt, m0, c0, false, true);
          pdl_wait();
        }
        for (int kt = 0; kt < early; ++kt) load_stage(kt, kt, m0, c0, true, false);
      }
      int it = 0;
      for (int tile = first_tile; tile < tiles; tile += tile_stride) {
        int m0, c0;
        tile_origin(tile, m0, c0);
        for (int kt = 0; kt < k_tiles; ++kt, ++it) {
          if (it >= early) load_stage(it, kt, m0, c0, true, true);
        }
      }
      SFM_TRACE_POINT_BY(0, 7);
      SFM_TRACE_COMMIT_BY(0, 310 + static_cast<int>(EPI));
    }
    if constexpr (SPLIT) {
      if (p.cluster_reduce) {  // split_cluster_reduce's two cluster barriers
        cluster_sync();
        cluster_sync_relaxed();
      }
    }
  } else {
    // ---------------- consumers: 64 tokens x kBN weight rows each
    asm volatile("setmaxnreg.inc.sync.aligned.u32 232;\n");
    const int cw = warpgroup - 1;
    const int t = threadIdx.x % 128;
    const RowScales row_scale = make_row_scales(p.epi);
    const float inv_hidden =
        EPI == EpilogueKind::kBiasToBf16 ? 1.0f : inverse_hidden_scale(p.epi);
    // Each group of K tiles (kPromoteTiles of them, 128 or 256 elements) is accumulated by wgmma
    // from zero into `part`, then added into the fp32 totals `acc`. A second partial set
    // to overlap the two was tried: ptxas then serialises the wgmmas (C7514) and it is
    // slower, so the group boundary waits for its wgmmas, as CUTLASS's FP8 promotion does.
    constexpr int kPromoteTiles = WIDE ? SFM_WGMMA_WIDE_PROMOTE_TILES : SFM_WGMMA_PROMOTE_TILES;
    // The epilogue of a tile runs while the tensor cores work on the first group of the
    // next tile (kFirstTiles K tiles, issued just before it), so it mostly hides.
    constexpr int kFirstTiles = WIDE ? SFM_WGMMA_WIDE_PROMOTE_TILES : SFM_WGMMA_FIRST_GROUP_TILES;
    float acc[kBN / 2];   // fp32 totals
    float part[kBN / 2];  // one group's wgmma partial sums

    // Issues the wgmmas of K tiles [kt0, kt0 + n) of the tile whose stages start at `it`.
    auto issue_group = [&](int it, int kt0, int n, int k_tiles) {
      wgmma_fence();
#pragma unroll
      for (int j = 0; j < kFirstTiles; ++j) {
        if (j < n && kt0 + j < k_tiles) {
          const int st = it + kt0 + j;
          const int s = st % kStages;
          SFM_TRACE_SPAN_BEGIN_BY(128, 3);
          mbar_wait(&full[s], (st / kStages) & 1);
          SFM_TRACE_SPAN_END_BY(128, 3);
          // Tall: own 64 tokens, shared B. Wide: shared 64 tokens, own 128 B rows.
          const uint64_t da = smem_desc(smem + s * kStageBytes + (WIDE ? 0 : cw * 64 * kBK));
          const uint64_t db =
              smem_desc(smem + s * kStageBytes + kTileABytes + (WIDE ? cw * kBN * kBK : 0));
#pragma unroll
          for (int kk = 0; kk < kBK / 32; ++kk) {
            // +32 bytes along K inside the swizzled row = +2 in the address field.
            wgmma_m64nk32<kBN>(part, da + 2 * kk, db + 2 * kk, (j == 0 && kk == 0) ? 0 : 1);
          }
        }
      }
      wgmma_commit();
    };
    // Waits for the group's wgmmas and hands its stages back to the producer.
    auto finish_group = [&](int it, int kt0, int n, int k_tiles) {
      SFM_TRACE_SPAN_BEGIN_BY(128, 4);
      wgmma_wait<0>();
      SFM_TRACE_SPAN_END_BY(128, 4);
      if (t == 0) {
        for (int j = 0; j < n && kt0 + j < k_tiles; ++j) {
          uint64_t* bar = &empty[(it + kt0 + j) % kStages];  // stages free for the producer(s)
          if constexpr (CLUSTER > 1) {
#pragma unroll
            for (int r = 0; r < CLUSTER; ++r) mbar_arrive_cluster(bar, r);
          } else {
            mbar_arrive(bar);
          }
        }
      }
    };

    auto epilogue = [&](int m0, int c0) {
      if (m0 < 0) return;  // no tile yet
      SFM_TRACE_SPAN_BEGIN_BY(128, 1);
      SFM_TRACE_SPAN_BEGIN_BY(128, 2);
      // -------------- epilogue: accumulators -> shared (output dtype) -> global
      // Each warpgroup stages and stores its own part of the tile (tall: its 64 token
      // rows; wide: its columns), so it syncs only with itself and the other warpgroup's
      // mainloop can run on meanwhile. The split-K kernel stages in the ring, which
      // both warpgroups must have finished reading first.
      if constexpr (P::kPersistent) {
        warpgroup_barrier(1 + cw);  // this warpgroup's previous stores have read staging
      } else {
        consumers_barrier();
      }
      constexpr int kOutBytes = P::kOutBytes;
      constexpr int kPitch = P::kPitch;
      const int r0 = (WIDE ? 0 : cw * 64) + (t / 32) * 16 + (t % 32) / 4;  // tile row of acc rows 0/1
      const int wg_col0 = WIDE ? cw * kWgCols : 0;  // this warpgroup's first tile column
      constexpr int kBlocks = kWgCols / 8;  // 8-column blocks of output per thread
      // The first of the two tile columns this thread holds in column block j, and where
      // row half `half` (tile row r0 or r0 + 8) of that pair is staged.
      auto block_col = [&](int j) { return wg_col0 + j * 8 + (t % 4) * 2; };
      auto staged = [&](int j, int half) {
        return staging + (r0 + half * 8) * kPitch + block_col(j) * kOutBytes;
      };
      // The per-column scales and bias of a batch of column blocks are loaded together,
      // before any is used. Loaded inside the column loop, ptxas issued them two blocks
      // at a time, a memory round trip each: ncu put most of a small tile's epilogue
      // there. Columns past N read the last pair instead (the loads need no guard; the
      // stores below skip those columns). 192-row tiles batch fewer blocks: registers.
      // The 128-row down GEMM keeps loading per block: batched (4 or 16 blocks) it ran
      // 10-20% slower on H200 (scripts/perf_probe.py), without a spill; not understood.
      constexpr bool kPerBlockLoads = EPI == EpilogueKind::kBiasToBf16 && kBN == 128 && !SPLIT;
      constexpr int kBatch = kBN == 192 ? 6 : kBlocks;
      static_assert(kBlocks % kBatch == 0, "column blocks per batch");
      const bool has_bias = !kGated && p.epi.bias != nullptr;
#pragma unroll
      for (int jb = 0; jb < kBlocks && SPLIT; ++jb) {  // raw sums; scales come in the reduce
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          *reinterpret_cast<float2*>(staged(jb, half)) =
              make_float2(acc[jb * 4 + half * 2], acc[jb * 4 + half * 2 + 1]);
        }
      }
#pragma unroll
      for (int j = 0; j < kBlocks && kPerBlockLoads; ++j) {
        const int col = c0 + block_col(j);
        float sa0 = 0.f, sa1 = 0.f, bias0 = 0.f, bias1 = 0.f;
        if (col < p.n_out) {  // n_out % 16 == 0, so col + 1 is in range too
          sa0 = row_scale(col);
          sa1 = row_scale(col + 1);
          if (p.epi.bias != nullptr) {
            bias0 = __bfloat162float(p.epi.bias[col]);
            bias1 = __bfloat162float(p.epi.bias[col + 1]);
          }
        }
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          *reinterpret_cast<__nv_bfloat162*>(staged(j, half)) =
              __floats2bfloat162_rn(acc[j * 4 + half * 2] * sa0 + bias0,
                                    acc[j * 4 + half * 2 + 1] * sa1 + bias1);
        }
      }
#pragma unroll
      for (int jb = 0; jb < kBlocks && !SPLIT && !kPerBlockLoads; jb += kBatch) {
        float sa[kBatch][2], sb[kBatch][2];
        __nv_bfloat162 bias[kBatch];
#pragma unroll
        for (int i = 0; i < kBatch; ++i) {
          // n_out % 16 == 0, so col + 1 is in range too
          const int col = min(c0 + block_col(jb + i), p.n_out - 2);
          sa[i][0] = row_scale(col);
          sa[i][1] = row_scale(col + 1);
          if constexpr (kGated) {
            sb[i][0] = row_scale(static_cast<int64_t>(p.n_out) + col);
            sb[i][1] = row_scale(static_cast<int64_t>(p.n_out) + col + 1);
          } else {
            const __nv_bfloat16 zero = __float2bfloat16(0.0f);
            bias[i] = __halves2bfloat162(has_bias ? p.epi.bias[col] : zero,
                                         has_bias ? p.epi.bias[col + 1] : zero);
          }
        }
#pragma unroll
        for (int i = 0; i < kBatch; ++i) {
          const int j = jb + i;
          const float sa0 = sa[i][0], sa1 = sa[i][1];
          float bias0 = 0.f, bias1 = 0.f;
          if constexpr (!kGated) {
            bias0 = __low2float(bias[i]);
            bias1 = __high2float(bias[i]);
          }
#pragma unroll
          for (int half = 0; half < 2; ++half) {
            uint8_t* dst = staged(j, half);
            const float v0 = acc[j * 4 + half * 2];
            const float v1 = acc[j * 4 + half * 2 + 1];
            if constexpr (EPI == EpilogueKind::kGatedToFp8) {
              const float u0 = acc[(j + kBlocks) * 4 + half * 2] * sb[i][0];
              const float u1 = acc[(j + kBlocks) * 4 + half * 2 + 1] * sb[i][1];
              *reinterpret_cast<uint16_t*>(dst) =
                  q_pair(activate<ACT>(v0 * sa0) * u0 * inv_hidden,
                         activate<ACT>(v1 * sa1) * u1 * inv_hidden);
            } else if constexpr (EPI == EpilogueKind::kBiasGeluToFp8) {
              *reinterpret_cast<uint16_t*>(dst) =
                  q_pair(gelu_tanh(v0 * sa0 + bias0) * inv_hidden,
                         gelu_tanh(v1 * sa1 + bias1) * inv_hidden);
            } else {
              *reinterpret_cast<__nv_bfloat162*>(dst) =
                  __floats2bfloat162_rn(v0 * sa0 + bias0, v1 * sa1 + bias1);
            }
          }
        }
      }
      SFM_TRACE_SPAN_END_BY(128, 2);
      if (SPLIT && p.cluster_reduce) return;  // split_cluster_reduce reads the staged tile
      warpgroup_barrier(1 + cw);
      // 16-byte coalesced stores of this warpgroup's valid rows and columns.
      constexpr int kRows = WIDE ? kBM : kBM / kConsumers;               // per warpgroup
      constexpr int kChunks = (WIDE ? kWgCols : kOutCols) * kOutBytes / 16;  // per row
      const int row0 = WIDE ? 0 : cw * kRows;
      const int chunk0 = WIDE ? cw * kChunks : 0;
      const int64_t row_bytes = static_cast<int64_t>(p.n_out) * kOutBytes;
      const int64_t out_pitch = p.out_pitch != 0 ? p.out_pitch : row_bytes;
      const int64_t col_bytes0 = static_cast<int64_t>(c0) * kOutBytes;
      uint8_t* out = static_cast<uint8_t*>(p.out) +
                     (SPLIT ? static_cast<int64_t>(blockIdx.y) * p.m * out_pitch : 0);
      for (int c = t; c < kRows * kChunks; c += 128) {
        const int r = row0 + c / kChunks;
        const int ch = chunk0 + c % kChunks;
        const int row = m0 + r;
        const int64_t byte_col = col_bytes0 + ch * 16;
        if (row < p.m && byte_col < row_bytes) {
          *reinterpret_cast<int4*>(out + row * out_pitch + byte_col) =
              *reinterpret_cast<const int4*>(staging + r * kPitch + ch * 16);
        }
      }
      SFM_TRACE_SPAN_END_BY(128, 1);
    };

    int it = 0;  // stages consumed before this tile
    int prev_m0 = -1, prev_c0 = 0;  // tile whose epilogue is pending
    for (int tile = first_tile; tile < tiles; tile += tile_stride, it += k_tiles) {
      SFM_TRACE_SPAN_BEGIN_BY(128, 5);
      int m0, c0;
      tile_origin(tile, m0, c0);
      const int first = min(kFirstTiles, k_tiles);
      issue_group(it, 0, first, k_tiles);
      epilogue(prev_m0, prev_c0);
      // acc = 0 + part rather than a copy: a copy lets the register allocator swap the
      // two sets, and the moves it then needs before the next wgmma serialise them (C7515).
#pragma unroll
      for (int i = 0; i < kBN / 2; ++i) acc[i] = 0.0f;
      finish_group(it, 0, first, k_tiles);
#pragma unroll
      for (int i = 0; i < kBN / 2; ++i) acc[i] += part[i];
      for (int kt0 = first; kt0 < k_tiles; kt0 += kPromoteTiles) {
        issue_group(it, kt0, kPromoteTiles, k_tiles);
        finish_group(it, kt0, kPromoteTiles, k_tiles);
#pragma unroll
        for (int i = 0; i < kBN / 2; ++i) acc[i] += part[i];
      }
      prev_m0 = m0;
      prev_c0 = c0;
      SFM_TRACE_SPAN_END_BY(128, 5);
    }
    epilogue(prev_m0, prev_c0);
    if constexpr (SPLIT) {
      if (p.cluster_reduce) {
        split_cluster_reduce<kBM, kOutCols, P::kPitch>(p, smem, prev_m0, prev_c0, threadIdx.x - 128);
      }
    }
    SFM_TRACE_POINT_BY(128, 7);
    SFM_TRACE_COMMIT_BY(128, 300 + static_cast<int>(EPI));
  }
  // The peer arrives on this CTA's barriers until its last stage: stay until then.
  if constexpr (CLUSTER > 1) cluster_sync();
#endif
}

// ---------------------------------------------------------------- host side

// x: [m, k]; w: [w_rows, k] with w_rows = 2 * n_out when gated, else n_out. Persistent:
// min(tiles, sms) CTAs (clusters: as many clusters as fit at once). SPLIT: one CTA per
// tile and split, gridDim.y = splits K ranges, each writing fp32 partial sums to p.out,
// or (p.cluster_reduce) the splits of a tile in one cluster, reducing into p.out.
template <EpilogueKind EPI, Activation ACT, bool WIDE, bool SPLIT = false, int BN = 128,
          int CLUSTER = 1, bool SHARE_X = false>
cudaError_t launch_shape(const uint8_t* x, const uint8_t* w, const WgmmaParams& p, int sms,
                         cudaStream_t stream, int splits = 1) {
  static_assert(!SPLIT || CLUSTER == 1, "split clusters run along y");
  const int cluster_y = SPLIT && p.cluster_reduce ? splits : 1;
  using P = Plan<EPI, WIDE, SPLIT, BN>;
  using S = typename P::S;
  SFM_TRACE_BIND();
  CUtensorMap tma_x, tma_w;
  // Padded output rows: the FP8 hidden only (split-K is a down GEMM too).
  if (EPI == EpilogueKind::kBiasToBf16 && p.out_pitch != 0) return cudaErrorInvalidValue;
  cudaError_t e =
      make_tma(&tma_x, x, p.m, p.k, SHARE_X ? S::kBM / CLUSTER : S::kBM, kBK, p.x_pitch);
  if (e != cudaSuccess) return e;
  // Boxes of half a weight tile: the gated GEMM's gate and up rows, or (clusters) the
  // half each CTA of the pair loads for both.
  e = make_tma(&tma_w, w, P::kGated ? 2 * int64_t(p.n_out) : p.n_out, p.k,
               P::kGated || (CLUSTER > 1 && !SHARE_X) ? S::kBN / 2 : S::kBN, kBK);
  if (e != cudaSuccess) return e;
  constexpr auto kernel = fp8_gemm_wgmma_kernel<EPI, ACT, WIDE, SPLIT, BN, CLUSTER, SHARE_X>;
  e = allow_dynamic_smem<kernel>(P::kSmemBytes);
  if (e != cudaSuccess) return e;
  const int64_t tiles = host_ceil_div(p.m, S::kBM) * host_ceil_div(p.n_out, P::kOutCols);
  int64_t blocks = P::kPersistent ? std::min<int64_t>(tiles, std::max(sms, 1)) : tiles;
  if constexpr (CLUSTER > 1) {
    using U = ClusterUnit<CLUSTER, SHARE_X>;
    const int64_t units =
        host_ceil_div(host_ceil_div(p.m, S::kBM), U::kTokenTiles) *
        host_ceil_div(host_ceil_div(p.n_out, P::kOutCols), U::kWeightTiles);
    int dev = 0;
    e = cudaGetDevice(&dev);
    if (e != cudaSuccess) return e;
    const int fit = max_active_clusters<kernel>(dev, CLUSTER, kThreads, P::kSmemBytes, 0);
    if (fit <= 0) return cudaErrorInvalidConfiguration;
    blocks = std::min<int64_t>(units, fit) * CLUSTER;
  }
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(static_cast<unsigned>(blocks), static_cast<unsigned>(splits));
  config.blockDim = dim3(kThreads, 1, 1);
  config.dynamicSmemBytes = P::kSmemBytes;
  config.stream = stream;
  cudaLaunchAttribute attr[2];
  // Programmatic dependent launch: the CTAs may start while the previous kernel in the
  // stream finishes. The down GEMM prefetches weights, then waits (griddepcontrol.wait)
  // for the gate/up GEMM before reading its activations; the gate/up GEMM waits before
  // reading anything. Measured on H200 (scripts/perf_probe.py) for the down GEMM: 3-5 us
  // saved per call at M = 33..128, nothing above M = 512 (1-2% slower at 2048-8192,
  // within noise), so large batches launch plainly.
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  attr[1].id = cudaLaunchAttributeClusterDimension;
  attr[1].val.clusterDim.x = CLUSTER;
  attr[1].val.clusterDim.y = static_cast<unsigned>(cluster_y);
  attr[1].val.clusterDim.z = 1;
  const bool pdl = SFM_WGMMA_PDL && p.m <= kMaxPdlTokens;
  config.attrs = pdl ? attr : attr + 1;
  config.numAttrs = (pdl ? 1 : 0) + (CLUSTER > 1 || cluster_y > 1 ? 1 : 0);
  return cudaLaunchKernelEx(&config, kernel, tma_x, tma_w, p);
}

constexpr int kMaxSplits = 16;   // split_k_factor's cap
constexpr int kReduceBatch = 4;  // split partials loaded at once by the reduce

// out[m, n] = bf16(sum over splits of ws[split][m][n] * scale(n) + bias(n)), 4 per thread.
// PROGRAMMATIC: launched as a programmatic dependent launch (see reduce_splits), it waits
// here for the GEMM's partial sums, then lets the next kernel (the next layer's gate/up
// GEMM) set up in turn; with trigger_first it lets that kernel launch before it waits
// (swap_gemm::triggers_next).
template <bool PROGRAMMATIC>
__global__ void split_k_reduce_kernel(const float* __restrict__ ws, int splits, int64_t mn,
                                      int n_out, EpilogueParams epi, __nv_bfloat16* out,
                                      int trigger_first) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if constexpr (PROGRAMMATIC) {
    if (trigger_first) {
      pdl_trigger();
      pdl_wait();
    } else {
      pdl_wait();
      pdl_trigger();
    }
  }
#endif
  const int64_t i = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) * 4;
  if (i >= mn) return;
  // The splits' loads go out kReduceBatch at a time before their adds: a few L2 round
  // trips instead of a chain of `splits` (each add waiting for its load). The sum keeps
  // split order 0, 1, 2, ..., so results do not change. Batches of 4 took up to 0.5 us off
  // MLPs at M <= 128; all 16 at once (more registers per thread) cost up to 2 us at
  // M = 200-384 (scripts/mlp_ab.py, H200, benchmarks/RESULTS.md, 2026-12-03).
  float4 v = make_float4(0.f, 0.f, 0.f, 0.f);  // set by split 0
  for (int s0 = 0; s0 < splits; s0 += kReduceBatch) {
    float4 part[kReduceBatch];
#pragma unroll
    for (int j = 0; j < kReduceBatch; ++j) {
      if (s0 + j < splits) part[j] = *reinterpret_cast<const float4*>(ws + (s0 + j) * mn + i);
    }
#pragma unroll
    for (int j = 0; j < kReduceBatch; ++j) {
      if (s0 + j == 0) {
        v = part[0];
      } else if (s0 + j < splits) {
        add_float4(v, part[j]);
      }
    }
  }
  const int col = static_cast<int>(i % n_out);  // n_out % 16 == 0: one row per 4
  store_scaled_bf16x4(out + i, v, epi, __ldg(epi.x_scale), col);
}

// Adds the `splits` fp32 partial sums in ws ([split][m][n_out]) in split order, applies
// p's scales and bias and writes bf16 to p.out (shared with the swap-AB down GEMM).
// `programmatic`: a programmatic dependent launch, scheduled while the GEMM before it runs
// and letting the kernel after it set up early. Behind the swap-AB down GEMM that took
// 0.75-1.0 us off the 1152x4304 MLP at M = 50-64 and 0.4 at 128 (about half of it from
// the early trigger); behind the persistent split-K wgmma GEMM the early trigger cost
// SwiGLU M = 200 6.3 us (without it: no change), so that one stays a plain launch
// (H200, scripts/mlp_ab.py, benchmarks/RESULTS.md, nineteenth session).
inline cudaError_t reduce_splits(const float* ws, int splits, const WgmmaParams& p,
                                 bool programmatic, cudaStream_t stream) {
  const int64_t mn = p.m * static_cast<int64_t>(p.n_out);
  const int64_t threads = mn / 4;
  const dim3 grid(static_cast<unsigned>((threads + 255) / 256), 1, 1);
  const auto* partials = static_cast<const float*>(ws);
  auto* out = static_cast<__nv_bfloat16*>(p.out);
  const int n_out = static_cast<int>(p.n_out);
  return programmatic
             ? launch_maybe_programmatic(split_k_reduce_kernel<true>, grid, dim3(256), true, stream,
                                         partials, splits, mn, n_out, p.epi, out, p.trigger_next)
             : launch_maybe_programmatic(split_k_reduce_kernel<false>, grid, dim3(256), false,
                                         stream, partials, splits, mn, n_out, p.epi, out, 0);
}

// Split-K factor of the wide down GEMM: fill the GPU, keep >= 4 K tiles per split.
using SplitPlan = Plan<EpilogueKind::kBiasToBf16, /*WIDE=*/true, /*SPLIT=*/true>;

// Output tiles of the split down GEMM (each split into K ranges).
inline int64_t split_tiles(int64_t m, int64_t n_out) {
  return host_ceil_div(m, SplitPlan::S::kBM) * host_ceil_div(n_out, SplitPlan::kOutCols);
}

// K splits that fill the GPU: sms / tiles, at most kMaxSplits, each >= 4 K tiles (shared
// with the swap-AB down GEMM).
inline int splits_to_fill(int64_t tiles, int64_t k, int sms) {
  const int64_t k_tiles = host_ceil_div(k, kBK);
  int64_t splits = std::max<int64_t>(1, sms / std::max<int64_t>(tiles, 1));
  splits = std::min<int64_t>({splits, kMaxSplits, std::max<int64_t>(1, k_tiles / 4)});
  return static_cast<int>(splits);
}

inline int split_k_factor(int64_t m, int64_t n_out, int64_t k, int sms) {
  return splits_to_fill(split_tiles(m, n_out), k, sms);
}

// K splits for `tiles` output tiles whose splits are one cluster each: `want`, at most a
// portable cluster, lowered until every tile's cluster of Kernel fits on the current
// device at once (GPCs do not divide into clusters evenly: a second wave of clusters
// would double the time); 1 where no split fits. Shared with the swap-AB down GEMM.
template <auto Kernel>
int fitting_cluster_splits(int want, int64_t tiles, int smem) {
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return 1;
  for (int s = std::min(want, kMaxClusterSplits); s >= 2; --s) {
    if (max_active_clusters<Kernel>(dev, s, kThreads, smem, 0) >= tiles) return s;
  }
  return 1;
}

// Split-K factor of the cluster-reduced down GEMM: split_k_factor's, as many as fit
// (fitting_cluster_splits).
template <Activation ACT>
int cluster_split_factor(int64_t m, int64_t n_out, int64_t k, int sms) {
  constexpr auto kernel = fp8_gemm_wgmma_kernel<EpilogueKind::kBiasToBf16, ACT, true, true, 128, 1>;
  return fitting_cluster_splits<kernel>(split_k_factor(m, n_out, k, sms), split_tiles(m, n_out),
                                        SplitPlan::kSmemBytes);
}

// Workspace bytes the split down GEMM needs for this problem.
inline int64_t split_workspace_bytes(int64_t m, int64_t n_out, int64_t k, int sms) {
  return static_cast<int64_t>(split_k_factor(m, n_out, k, sms)) * m * n_out * 4;
}

// The down GEMM as split-K partial sums into `ws` plus one reduce-and-epilogue kernel.
template <Activation ACT>
cudaError_t launch_split_k(const uint8_t* x, const uint8_t* w, const WgmmaParams& p, float* ws,
                           int64_t ws_bytes, int sms, cudaStream_t stream) {
  if (p.m == 0 || p.n_out == 0) return cudaSuccess;
  const int splits = split_k_factor(p.m, p.n_out, p.k, sms);
  if (ws == nullptr || ws_bytes < split_workspace_bytes(p.m, p.n_out, p.k, sms)) {
    return cudaErrorInvalidValue;
  }
  WgmmaParams partial = p;
  partial.out = ws;
  cudaError_t e = launch_shape<EpilogueKind::kBiasToBf16, ACT, /*WIDE=*/true, /*SPLIT=*/true>(
      x, w, partial, sms, stream, splits);
  if (e != cudaSuccess) return e;
  return reduce_splits(ws, splits, p, /*programmatic=*/false, stream);
}

// The down GEMM split over K with the splits of each tile in one cluster, reduced over
// distributed shared memory by the same kernel (cluster_split_factor splits).
template <Activation ACT>
cudaError_t launch_split_k_cluster(const uint8_t* x, const uint8_t* w, const WgmmaParams& p,
                                   int sms, cudaStream_t stream) {
  if (p.m == 0 || p.n_out == 0) return cudaSuccess;
  WgmmaParams q = p;
  q.cluster_reduce = 1;
  return launch_shape<EpilogueKind::kBiasToBf16, ACT, /*WIDE=*/true, /*SPLIT=*/true>(
      x, w, q, sms, stream, cluster_split_factor<ACT>(p.m, p.n_out, p.k, sms));
}

// Up to kMaxWideTokens tokens the wide CTA shape, above the tall one. With persistent CTAs
// and the split-K down GEMM chosen by tile count, 64 and 256 measured the same on H200
// (scripts/perf_probe.py, M = 100..8192); the knob stays for tuning.
#ifndef SFM_WGMMA_MAX_WIDE_TOKENS
#define SFM_WGMMA_MAX_WIDE_TOKENS 64
#endif
constexpr int kMaxWideTokens = SFM_WGMMA_MAX_WIDE_TOKENS;

// Weight rows of the tall shape: 64, 128 or 192. With one persistent CTA per SM the time
// goes with the most tiles any CTA runs, weighted by a tile's cost. 192 rows move 1/6
// fewer operand bytes per FLOP through L2 and shared memory than 128 (two 64-token
// warpgroups share the weight tile) and cost 1.35 times a 128-row tile on H200
// (scripts/perf_probe.py): they lose where they leave a partial last wave (N = 2048,
// 4096 below M = 8192) and win where they divide N. 64 rows are for the dense up GEMM
// at batches whose 128-row tiles leave most SMs idle (a vision tower's, N = 4304 or
// 6144, at M = 65..128: 34 or 48 tiles on 132 SMs): twice the tiles at
// SFM_WGMMA_TALL64_COST percent of the cost each took the 1536x6144 MLP from 19.6 to
// 17.7 us at M = 100. Down GEMMs keep 128 rows (or split K): forced to 64 rows they made
// the MLP 1.2-5.5 us slower at M = 65..384, dense and gated alike (scripts/mlp_ab.py,
// H200, benchmarks/RESULTS.md, 2026-12-03).
// The gated gate/up GEMM at 2 token tiles (M = 129..256) takes 192 rows whatever the
// cost: there the cost above picks 128 by a hair (SwiGLU M = 160: 4 waves x 100 against
// 3 x 135), while 192 rows measured faster at every M tried, both gated MLPs (whole MLP,
// H200: SwiGLU M = 129 / 160 / 192 / 256 124.7 / 107.3 / 104.4 / 98.7 -> 106.8 / 97.2 /
// 94.3 / 98.3 us, GeGLU 67.6 / 60.3 / 55.1 / 57.3 -> 59.2 / 56.0 / 53.6 / 56.8;
// scripts/mlp_ab.py, benchmarks/RESULTS.md, 2026-12-03). At 3 token tiles the cost
// already picks 192 for these shapes. Measured only for K = 2048 / 4096, H = 14336 / 16384.
// SFM_WGMMA_TALL_ROWS 0: chosen so; 64, 128 or 192: forced (tuning builds).
#ifndef SFM_WGMMA_TALL_ROWS
#define SFM_WGMMA_TALL_ROWS 0
#endif
#ifndef SFM_WGMMA_TALL64_COST
#define SFM_WGMMA_TALL64_COST 60
#endif

// clustered: the launch pairs CTAs in clusters, which have no 64-row instantiation.
template <EpilogueKind EPI>
int tall_rows(int64_t m, int64_t n_out, int sms, bool clustered = false) {
  if (SFM_WGMMA_TALL_ROWS != 0) return SFM_WGMMA_TALL_ROWS;
  const int64_t token_tiles = host_ceil_div(m, Shape<false, 128>::kBM);
  if (EPI == EpilogueKind::kGatedToFp8 && token_tiles == 2) return 192;
  const bool allow64 = EPI == EpilogueKind::kBiasGeluToFp8 && !clustered;
  auto cost = [&](int rows) {
    const int cols = EPI == EpilogueKind::kGatedToFp8 ? rows / 2 : rows;
    const int64_t tiles = token_tiles * host_ceil_div(n_out, cols);
    const int64_t percent = rows == 192 ? 135 : rows == 128 ? 100 : SFM_WGMMA_TALL64_COST;
    return host_ceil_div(tiles, std::max(sms, 1)) * percent;
  };
  int best = 128;
  if (cost(192) < cost(best)) best = 192;
  if (allow64 && cost(64) < cost(best)) best = 64;
  return best;
}

// Tall CTAs in pairs that share their token tile (x multicast, SHARE_X) rather than each
// loading it: operand bytes through L2 go from M N K (1 / rows + 1 / 128) to M N K (1 /
// rows + 1 / 256). Measured, always on against never (whole MLPs, M = 65..8192,
// scripts/mlp_ab.py, H200, benchmarks/RESULTS.md, 2026-12-03, thirteenth session): faster
// only for the SwiGLU gate/up GEMM (K = 4096) at one token tile (M = 65 / 100 / 128:
// -4.4 / -2.2 / -1.4 us); GeGLU's (K = 2048) +3.6 us at M = 65, level at 100-128; dense
// MLPs level at one token tile; from two token tiles on slower (up to 8%; the pair's
// rings run in lockstep) except SwiGLU at M = 129 (-1.3 us). So: the gated gate/up GEMM
// at one token tile with K >= 4096 (SwiGLU M = 65 / 80 / 100 / 128 then measured 67.0 /
// 64.7 / 63.7 / 63.3 -> 63.5 / 61.7 / 61.4 / 62.3 us; GeGLU unchanged).
// SFM_WGMMA_SHARE_X 0: never; 1: by share_x; 2: always (tall, 128 or 192 rows, unpaired).
#ifndef SFM_WGMMA_SHARE_X
#define SFM_WGMMA_SHARE_X 1
#endif
// Experiment 9 (thirty-ninth session): the dense up GEMM's tall 64-row tiles at one token
// tile (auto at M = 65..128) in x-sharing pairs too. There x is two thirds of each CTA's
// operand bytes (128 tokens against 64 weight rows per K tile). Whole MLPs, H200, call
// 31 (benchmarks/RESULTS.md): 0.5-1.6 us slower at every M from 65 to 128 for four dense
// towers (fewer bytes, the pair's rings in lockstep). 0: off (kept for the record).
#ifndef SFM_WGMMA_SHARE_X_DENSE64
#define SFM_WGMMA_SHARE_X_DENSE64 0
#endif
template <EpilogueKind EPI>
bool share_x(int64_t m, int64_t k, int rows = 128) {
  if (SFM_WGMMA_SHARE_X != 1) return SFM_WGMMA_SHARE_X == 2 && rows != 64;
  if (rows == 64) {
    return SFM_WGMMA_SHARE_X_DENSE64 && EPI == EpilogueKind::kBiasGeluToFp8 &&
           m <= Shape<false, 128>::kBM;
  }
  return EPI == EpilogueKind::kGatedToFp8 && m <= Shape<false, 128>::kBM && k >= 4096;
}

// The wide shape (64-token tiles) up to kMaxWideTokens, and for the gate/up GEMMs at
// M = 129..192, where the tall shape's second 128-token tile would be at most half full:
// three 64-token tiles compute 192 rows, two tall ones 256. Whole MLPs, wide against the
// tall tiles before (down GEMMs unchanged; scripts/mlp_ab.py, H200, benchmarks/RESULTS.md,
// 2026-12-03, thirteenth session): SwiGLU M = 129 / 160 / 192 111.2 / 101.1 / 93.9 ->
// 86.6 / 77.0 / 77.7 us, GeGLU 59.3 / 56.3 / 54.9 -> 48.8 / 48.6 / 49.0, dense 0.5-1.1
// us faster; at M = 256 (no padding either way) GeGLU was 1.7-4.3 us slower, and at M =
// 65-128 dense MLPs 0.2-1.7 us slower. Down GEMMs there are split-K (not this launch).
// SFM_WGMMA_WIDE_MID 0: wide up to kMaxWideTokens only.
#ifndef SFM_WGMMA_WIDE_MID
#define SFM_WGMMA_WIDE_MID 1
#endif
template <EpilogueKind EPI>
bool wide_shape(int64_t m) {
  constexpr int64_t kTallTokens = Shape<false, 128>::kBM;
  if (m <= kMaxWideTokens) return true;
  return SFM_WGMMA_WIDE_MID && EPI != EpilogueKind::kBiasToBf16 && m > kTallTokens &&
         m <= kTallTokens + Shape<true, 128>::kBM;
}

// The tall shape with `rows` weight rows (64 only unclustered).
template <EpilogueKind EPI, Activation ACT, int CLUSTER = 1, bool SHARE_X = false>
cudaError_t launch_tall(int rows, const uint8_t* x, const uint8_t* w, const WgmmaParams& p,
                        int sms, cudaStream_t stream) {
  if (rows == 192) return launch_shape<EPI, ACT, false, false, 192, CLUSTER, SHARE_X>(x, w, p, sms, stream);
  if constexpr (CLUSTER == 1) {
    if (rows == 64) return launch_shape<EPI, ACT, false, false, 64>(x, w, p, sms, stream);
  } else if constexpr (SHARE_X && SFM_WGMMA_SHARE_X_DENSE64 && EPI == EpilogueKind::kBiasGeluToFp8) {
    if (rows == 64) return launch_shape<EPI, ACT, false, false, 64, 2, true>(x, w, p, sms, stream);
  }
  return launch_shape<EPI, ACT, false, false, 128, CLUSTER, SHARE_X>(x, w, p, sms, stream);
}

// tall_rows: 0 picks the CTA shape by batch size (wide_shape, else tall with
// tall_rows<EPI>()); 64, 128 or 192 forces the tall shape with that many weight rows.
template <EpilogueKind EPI, Activation ACT>
cudaError_t launch(const uint8_t* x, const uint8_t* w, const WgmmaParams& p, int sms,
                   cudaStream_t stream, int forced_tall_rows = 0) {
  if (p.m == 0 || p.n_out == 0) return cudaSuccess;
  if (forced_tall_rows == 0 && wide_shape<EPI>(p.m)) {
    return launch_shape<EPI, ACT, true>(x, w, p, sms, stream);
  }
  // Clusters of two (weight tiles multicast) where K rows are not whole 128-byte lines
  // and there are two token tiles to pair. Such rows straddle L2 lines, and halving the
  // weight bytes each CTA loads pays there: a dense GEMM with K = 4304, M = 8192 took
  // 100 us against 68 us at K = 4352, and 78 us with clusters; at K = 1152, 4352, 14336
  // or 16384 clusters were 3-7% slower (H200, RESULTS.md, eighth session).
  // SFM_WGMMA_CLUSTER=1: never. A forced 64-row shape runs unclustered. Still so where
  // x's rows are padded to whole lines (the weights' still straddle; SFM_WGMMA_PAIR_PADDED).
  // Else pairs that share the token tile where share_x says so.
  const bool paired = SFM_WGMMA_CLUSTER > 1 && p.m > Shape<false, 128>::kBM && p.k % kBK != 0 &&
                      (SFM_WGMMA_PAIR_PADDED || p.x_pitch == 0);
  const int rows = forced_tall_rows != 0 ? forced_tall_rows
                                         : tall_rows<EPI>(p.m, p.n_out, sms, paired);
  if (paired && rows != 64) return launch_tall<EPI, ACT, 2>(rows, x, w, p, sms, stream);
  if (share_x<EPI>(p.m, p.k, rows)) {
    return launch_tall<EPI, ACT, 2, true>(rows, x, w, p, sms, stream);
  }
  return launch_tall<EPI, ACT>(rows, x, w, p, sms, stream);
}

}  // namespace wgmma_gemm
}  // namespace
}  // namespace static_fp8_mlp
