// q(v): saturating float -> FP8 e4m3fn conversion, exactly as PyTorch does
// `torch.clamp(v, -448, 448).to(torch.float8_e4m3fn)` on an fp32 value:
// round to nearest even, NaN stays NaN (0x7f with the sign of the input), +-inf and
// anything beyond +-448 saturate to +-448, fp32 denormals become +-0.
//
// The hardware conversion (cvt.rn.satfinite.e4m3x2.f32, sm_89+) rounds and saturates
// exactly like that for every non-NaN input; NaN is patched to keep its sign bit the
// way PyTorch's software conversion does. Tests compare byte for byte against torch.
#pragma once

#include <cstdint>

#include "common.cuh"

namespace static_fp8_mlp {

// The bare hardware conversion: right for every value except NaNs with the sign bit
// set (which GPU arithmetic never produces: its NaN results are the positive canonical
// NaN). lo -> byte 0, hi -> byte 1.
SFM_DEVICE uint16_t cvt_pair(float lo, float hi) {
  uint16_t packed;
  asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(packed) : "f"(hi), "f"(lo));
  return packed;
}

SFM_DEVICE uint32_t cvt_quad(float a, float b, float c, float d) {
  return static_cast<uint32_t>(cvt_pair(a, b)) | (static_cast<uint32_t>(cvt_pair(c, d)) << 16);
}

// Two floats -> two FP8 bytes packed in the low 16 bits: lo -> byte 0, hi -> byte 1.
SFM_DEVICE uint16_t q_pair(float lo, float hi) {
  uint16_t packed = cvt_pair(lo, hi);
  const uint32_t lo_bits = __float_as_uint(lo);
  const uint32_t hi_bits = __float_as_uint(hi);
  if ((lo_bits & 0x7fffffffu) > 0x7f800000u) {
    packed = (packed & 0xff00u) | (0x7fu | ((lo_bits >> 24) & 0x80u));
  }
  if ((hi_bits & 0x7fffffffu) > 0x7f800000u) {
    packed = (packed & 0x00ffu) | ((0x7fu | ((hi_bits >> 24) & 0x80u)) << 8);
  }
  return packed;
}

SFM_DEVICE uint8_t q_one(float v) { return static_cast<uint8_t>(q_pair(v, 0.0f) & 0xffu); }

// Four floats -> four FP8 bytes in one 32-bit word (element 0 in the low byte).
SFM_DEVICE uint32_t q_quad(float a, float b, float c, float d) {
  return static_cast<uint32_t>(q_pair(a, b)) | (static_cast<uint32_t>(q_pair(c, d)) << 16);
}

}  // namespace static_fp8_mlp
