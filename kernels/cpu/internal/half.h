// Scalar conversions between fp32 and the 16-bit float formats, written with integer operations
// and selects so that loops over them vectorize in the ISA clones (no F16C intrinsics, which the
// baseline clone lacks). Their NaN handling follows the references the tests compare with:
// numpy for float16 (payload kept, never quieted), ggml for bfloat16 (quieted, sign kept).
//
//   const float d = internal::HalfToFloat(LoadU16(block));   // a block's scale
//   out[i] = internal::FloatToBf16(x[i]);
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>

namespace pagoda::kernels::internal {

/// The 16-bit little-endian value at p (block fields are not aligned).
inline uint16_t LoadU16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

/// Exact: every float16 is a float32. Inf and NaN keep their sign and payload.
inline float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = h & 0x7c00u;
  const uint32_t shifted = static_cast<uint32_t>(h & 0x7fffu) << 13;  // mantissa in place
  // Normal numbers re-bias the exponent (15 -> 127); Inf/NaN move it to all ones.
  const uint32_t normal = shifted + ((127u - 15u) << 23);
  const uint32_t inf_nan = shifted + ((255u - 31u) << 23);
  // Subnormals (and zero): m * 2^-24 = (1 + m/1024) * 2^-14 - 2^-14, where both operands and
  // the difference are exact float32 values.
  const float magic = std::bit_cast<float>(113u << 23);  // 2^-14
  const uint32_t subnormal =
      std::bit_cast<uint32_t>(std::bit_cast<float>(shifted + (113u << 23)) - magic);
  const uint32_t magnitude = exponent == 0x7c00u ? inf_nan : (exponent == 0 ? subnormal : normal);
  return std::bit_cast<float>(sign | magnitude);
}

/// Round to nearest, ties to even; overflow gives Inf; results below half the smallest
/// subnormal give a signed zero. A NaN keeps its sign and top 10 payload bits (a payload that
/// would vanish becomes 1, so it stays a NaN).
inline uint16_t FloatToHalf(float f) {
  const uint32_t bits = std::bit_cast<uint32_t>(f);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude >= 0x7f800000u) {  // Inf or NaN
    uint32_t payload = (magnitude & 0x7fffffu) >> 13;
    if (magnitude != 0x7f800000u && payload == 0) payload = 1;
    return static_cast<uint16_t>(sign | 0x7c00u | payload);
  }
  const int exponent = static_cast<int>(magnitude >> 23) - 127;
  if (exponent > 15) return static_cast<uint16_t>(sign | 0x7c00u);
  if (exponent >= -14) {
    // Normal result: keep 10 mantissa bits, round on the 13 dropped ones. A carry out of the
    // mantissa correctly bumps the exponent (up to Inf).
    const uint32_t kept =
        (static_cast<uint32_t>(exponent + 15) << 10) | ((magnitude >> 13) & 0x3ffu);
    const uint32_t dropped = magnitude & 0x1fffu;
    const uint32_t round_up = dropped > 0x1000u || (dropped == 0x1000u && (kept & 1u));
    return static_cast<uint16_t>(sign | (kept + round_up));
  }
  // Subnormal result in units of 2^-24: (1.mantissa) * 2^exponent = significand * 2^(exponent+1)
  // with the 24-bit significand, so shift right by -(exponent + 1).
  const int shift = -(exponent + 1);
  if (shift > 24) return sign;  // below 2^-25: rounds to zero (float32 subnormals land here)
  const uint32_t significand = (magnitude & 0x7fffffu) | 0x800000u;
  const uint32_t kept = significand >> shift;
  const uint32_t dropped = significand & ((1u << shift) - 1u);
  const uint32_t half = 1u << (shift - 1);
  const uint32_t round_up = dropped > half || (dropped == half && (kept & 1u));
  return static_cast<uint16_t>(sign | (kept + round_up));
}

/// Exact.
inline float Bf16ToFloat(uint16_t h) {
  return std::bit_cast<float>(static_cast<uint32_t>(h) << 16);
}

/// Round to nearest, ties to even (PyTorch's and ggml's rounding); a NaN becomes a quiet NaN with
/// its sign and top payload bits.
inline uint16_t FloatToBf16(float f) {
  const uint32_t bits = std::bit_cast<uint32_t>(f);
  const uint32_t rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
  const uint32_t quiet_nan = (bits >> 16) | 0x40u;
  return static_cast<uint16_t>((bits & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded);
}

}  // namespace pagoda::kernels::internal
