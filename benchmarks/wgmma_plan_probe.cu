// The persistent wgmma kernel's shared-memory plan (wgmma_gemm::Plan) per CTA shape:
// ring stages, staging bytes and the dynamic shared memory it asks for, against the
// 227 KiB sm_90 limit. Host code only (the plan is constexpr): it runs on any machine.
// Build and run it here, with any of the kernel's macros (e.g. -DSFM_WGMMA_ALIGNED_SMEM=1
// once benchmarks/results/aligned_smem_patch_2026-12-04_twentyeighth.patch is applied):
//
//   nvcc -std=c++17 -O3 -arch=sm_90a -o /tmp/wgmma_plan_probe benchmarks/wgmma_plan_probe.cu
//   /tmp/wgmma_plan_probe
#include <cstdio>

#include "../kernels-src/fp8_gemm_wgmma.cuh"

namespace {

using static_fp8_mlp::EpilogueKind;

template <EpilogueKind EPI, bool WIDE, int BN>
void row(const char* name) {
  using P = static_fp8_mlp::wgmma_gemm::Plan<EPI, WIDE, /*SPLIT=*/false, BN>;
  std::printf("%-26s stages %d  stage %6d B  staging %6d B  smem %6d of %d B\n", name,
              P::kStages, P::S::kStageBytes, P::kStagingBytes, P::kSmemBytes,
              static_fp8_mlp::wgmma_gemm::kMaxDynamicSmem);
}

}  // namespace

int main() {
  row<EpilogueKind::kBiasGeluToFp8, false, 192>("dense up, tall 192 rows");
  row<EpilogueKind::kBiasGeluToFp8, false, 128>("dense up, tall 128 rows");
  row<EpilogueKind::kBiasGeluToFp8, false, 64>("dense up, tall 64 rows");
  row<EpilogueKind::kGatedToFp8, false, 192>("gated gate/up, tall 192");
  row<EpilogueKind::kGatedToFp8, false, 128>("gated gate/up, tall 128");
  row<EpilogueKind::kBiasToBf16, false, 192>("down, tall 192 rows");
  row<EpilogueKind::kBiasToBf16, false, 128>("down, tall 128 rows");
  row<EpilogueKind::kBiasGeluToFp8, true, 128>("dense up, wide 128");
  row<EpilogueKind::kGatedToFp8, true, 128>("gated gate/up, wide 128");
  row<EpilogueKind::kBiasToBf16, true, 128>("down, wide 128");
  return 0;
}
