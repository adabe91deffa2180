#include "kernels/cpu/internal/block_formats.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include "kernels/cpu/internal/half.h"
#include "kernels/cpu/internal/vec_math.h"

namespace pagoda::kernels::internal {
namespace {

// Block layouts as GGML defines them (ggml-common.h); byte arrays only, so no padding and no
// alignment: blocks sit back to back at any address. f16 fields are little-endian halves.
constexpr int kQK = 32;    // elements per block of the legacy formats
constexpr int kQKK = 256;  // elements per super-block of the K-quants

struct BlockQ8_0 {
  uint8_t d[2];
  int8_t qs[kQK];
};
struct BlockQ4_0 {
  uint8_t d[2];
  uint8_t qs[kQK / 2];  // element j in the low nibble of qs[j], element j + 16 in the high one
};
struct BlockQ4_1 {
  uint8_t d[2];
  uint8_t m[2];
  uint8_t qs[kQK / 2];
};
struct BlockQ5_0 {
  uint8_t d[2];
  uint8_t qh[4];  // bit j of this little-endian word is the fifth bit of element j
  uint8_t qs[kQK / 2];
};
struct BlockQ5_1 {
  uint8_t d[2];
  uint8_t m[2];
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
struct BlockQ2_K {
  uint8_t scales[kQKK / 16];  // per 16 elements: scale in the low nibble, min in the high one
  uint8_t qs[kQKK / 4];       // 2-bit quants: 4 per byte, 32-byte groups shifted 0, 2, 4, 6
  uint8_t d[2];
  uint8_t dmin[2];
};
struct BlockQ3_K {
  uint8_t hmask[kQKK / 8];  // bit b of hmask[l]: high bit of element 32 b + l (set: no -4)
  uint8_t qs[kQKK / 4];     // low 2 bits, laid out as Q2_K's
  uint8_t scales[12];       // 16 six-bit scales, offset by 32
  uint8_t d[2];
};
struct BlockQ4_K {
  uint8_t d[2];
  uint8_t dmin[2];
  uint8_t scales[12];    // 8 six-bit scales and 8 six-bit mins
  uint8_t qs[kQKK / 2];  // 32-byte groups: low nibbles one sub-block, high nibbles the next
};
struct BlockQ5_K {
  uint8_t d[2];
  uint8_t dmin[2];
  uint8_t scales[12];
  uint8_t qh[kQKK / 8];  // bit j of qh[l]: fifth bit of element 32 j + l
  uint8_t qs[kQKK / 2];
};
struct BlockQ6_K {
  uint8_t ql[kQKK / 2];  // low 4 bits: per 128 elements, 64 bytes of low then high nibbles
  uint8_t qh[kQKK / 4];  // high 2 bits: per 128 elements, 32 bytes shifted 0, 2, 4, 6
  int8_t scales[kQKK / 16];
  uint8_t d[2];
};
static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22 && sizeof(BlockQ5_1) == 24 && sizeof(BlockQ2_K) == 84);
static_assert(sizeof(BlockQ3_K) == 110 && sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210);

float Half(const uint8_t (&field)[2]) { return HalfToFloat(LoadU16(field)); }

template <typename Block>
const Block* Blocks(const void* src) {
  return static_cast<const Block*>(src);
}

// Every function below computes each element with the same float32 operations, in the same
// order, as gguf.quants' dequantize_blocks (sub-block scales such as d * sc are rounded to
// float32 first there too). Each group of 16 or 32 elements that shares a scale is one
// `#pragma omp simd` loop reading the packed bytes directly: the pragma keeps GCC from fully
// unrolling these short loops into scalar code, and no unpacked copy in between means no
// store-forwarding stalls.

// out[l] = d * q(l) for l < N.
template <int N, typename Quant>
inline void Scale(Quant q, float d, float* __restrict out) {
#pragma omp simd
  for (int l = 0; l < N; ++l) out[l] = d * static_cast<float>(q(l));
}

// out[l] = d * q(l) + m (the legacy formats with a min).
template <int N, typename Quant>
inline void ScaleAddMin(Quant q, float d, float m, float* __restrict out) {
#pragma omp simd
  for (int l = 0; l < N; ++l) out[l] = d * static_cast<float>(q(l)) + m;
}

// out[l] = d * q(l) - m (the K-quants with a min).
template <int N, typename Quant>
inline void ScaleSubMin(Quant q, float d, float m, float* __restrict out) {
#pragma omp simd
  for (int l = 0; l < N; ++l) out[l] = d * static_cast<float>(q(l)) - m;
}

void F32ToFloat(const void* __restrict src, float* __restrict dst, int64_t n) {
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}

PAGODA_KERNEL_CLONES void F16ToFloat(const void* __restrict src, float* __restrict dst, int64_t n) {
  const auto* h = static_cast<const uint16_t*>(src);
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) dst[i] = HalfToFloat(h[i]);
}

PAGODA_KERNEL_CLONES void Bf16ToFloat(const void* __restrict src, float* __restrict dst,
                                      int64_t n) {
  const auto* h = static_cast<const uint16_t*>(src);
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) dst[i] = internal::Bf16ToFloat(h[i]);
}

PAGODA_KERNEL_CLONES void Q8_0ToFloat(const void* __restrict src, float* __restrict dst,
                                      int64_t num_blocks) {
  const auto* blocks = Blocks<BlockQ8_0>(src);
  for (int64_t b = 0; b < num_blocks; ++b, dst += kQK) {
    const int8_t* qs = blocks[b].qs;
    // gguf computes x * d; float multiplication is commutative, bit for bit.
    Scale<kQK>([qs](int l) { return static_cast<int32_t>(qs[l]); }, Half(blocks[b].d), dst);
  }
}

// Legacy blocks: element j < 16 in the low nibble of qs[j], element j + 16 in the high one.
int32_t LowNibble(const uint8_t* qs, int j) { return qs[j] & 0x0F; }
int32_t HighNibble(const uint8_t* qs, int j) { return qs[j] >> 4; }

PAGODA_KERNEL_CLONES void Q4_0ToFloat(const void* __restrict src, float* __restrict dst,
                                      int64_t num_blocks) {
  const auto* blocks = Blocks<BlockQ4_0>(src);
  for (int64_t b = 0; b < num_blocks; ++b, dst += kQK) {
    const uint8_t* qs = blocks[b].qs;
    const float d = Half(blocks[b].d);
    Scale<kQK / 2>([qs](int j) { return LowNibble(qs, j) - 8; }, d, dst);
    Scale<kQK / 2>([qs](int j) { return HighNibble(qs, j) - 8; }, d, dst + kQK / 2);
  }
}

PAGODA_KERNEL_CLONES void Q4_1ToFloat(const void* __restrict src, float* __restrict dst,
                                      int64_t num_blocks) {
  const auto* blocks = Blocks<BlockQ4_1>(src);
  for (int64_t b = 0; b < num_blocks; ++b, dst += kQK) {
    const uint8_t* qs = blocks[b].qs;
    const float d = Half(blocks[b].d);
    const float m = Half(blocks[b].m);
    ScaleAddMin<kQK / 2>([qs](int j) { return LowNibble(qs, j); }, d, m, dst);
    ScaleAddMin<kQK / 2>([qs](int j) { return HighNibble(qs, j); }, d, m, dst + kQK / 2);
  }
}

uint32_t LoadU32(const uint8_t (&field)[4]) {
  uint32_t v;
  std::memcpy(&v, field, sizeof(v));
  return v;
}

// The fifth bit of element j of a Q5_0/Q5_1 block: bit j of the little-endian word qh.
int32_t FifthBit(uint32_t qh, int j) { return static_cast<int32_t>(((qh >> j) & 1u) << 4); }

PAGODA_KERNEL_CLONES void Q5_0ToFloat(const void* __restrict src, float* __restrict dst,
                                      int64_t num_blocks) {
  const auto* blocks = Blocks<BlockQ5_0>(src);
  for (int64_t b = 0; b < num_blocks; ++b, dst += kQK) {
    const uint8_t* qs = blocks[b].qs;
    const uint32_t qh = LoadU32(blocks[b].qh);
    const float d = Half(blocks[b].d);
    Scale<kQK / 2>([qs, qh](int j) { return (LowNibble(qs, j) | FifthBit(qh, j)) - 16; }, d, dst);
    Scale<kQK / 2>([qs, qh](int j) { return (HighNibble(qs, j) | FifthBit(qh, j + kQK / 2)) - 16; },
                   d, dst + kQK / 2);
  }
}

PAGODA_KERNEL_CLONES void Q5_1ToFloat(const void* __restrict src, float* __restrict dst,
                                      int64_t num_blocks) {
  const auto* blocks = Blocks<BlockQ5_1>(src);
  for (int64_t b = 0; b < num_blocks; ++b, dst += kQK) {
    const uint8_t* qs = blocks[b].qs;
    const uint32_t qh = LoadU32(blocks[b].qh);
    const float d = Half(blocks[b].d);
    const float m = Half(blocks[b].m);
    ScaleAddMin<kQK / 2>([qs, qh](int j) { return LowNibble(qs, j) | FifthBit(qh, j); }, d, m, dst);
    ScaleAddMin<kQK / 2>([qs, qh](int j) { return HighNibble(qs, j) | FifthBit(qh, j + kQK / 2); },
                         d, m, dst + kQK / 2);
  }
}

// Q2_K and Q3_K: element 128 h + 32 s + l is bits 2s..2s+1 of qs[32 h + l]; its 16-element
// group is g = 8 h + 2 s + l / 16, so group g reads qs[32 h + 16 (g % 2) + i] shifted by 2 s.
struct CrumbGroup {
  const uint8_t* bytes;
  int shift;
};
CrumbGroup Crumbs(const uint8_t* qs, int g) {
  return {qs + 32 * (g / 8) + 16 * (g % 2), 2 * ((g % 8) / 2)};
}

PAGODA_KERNEL_CLONES void Q2_KToFloat(const void* __restrict src, float* __restrict dst,
                                      int64_t num_blocks) {
  const auto* blocks = Blocks<BlockQ2_K>(src);
  for (int64_t b = 0; b < num_blocks; ++b, dst += kQKK) {
    const BlockQ2_K& blk = blocks[b];
    const float d = Half(blk.d);
    const float dmin = Half(blk.dmin);
    // Group g: scale in the low nibble of scales[g], min in the high one.
    for (int g = 0; g < kQKK / 16; ++g) {
      const float dl = d * static_cast<float>(blk.scales[g] & 0x0F);
      const float ml = dmin * static_cast<float>(blk.scales[g] >> 4);
      const CrumbGroup c = Crumbs(blk.qs, g);
      ScaleSubMin<16>([c](int i) { return (c.bytes[i] >> c.shift) & 3; }, dl, ml, dst + 16 * g);
    }
  }
}

PAGODA_KERNEL_CLONES void Q3_KToFloat(const void* __restrict src, float* __restrict dst,
                                      int64_t num_blocks) {
  const auto* blocks = Blocks<BlockQ3_K>(src);
  for (int64_t b = 0; b < num_blocks; ++b, dst += kQKK) {
    const BlockQ3_K& blk = blocks[b];
    const float d = Half(blk.d);
    for (int g = 0; g < kQKK / 16; ++g) {
      // Scale g: low 4 bits from the nibbles of bytes 0..7 (low nibbles first), high 2 bits
      // from bits 2 (g / 4) of byte 8 + g % 4; stored offset by 32.
      const int lo = g < 8 ? blk.scales[g] & 0x0F : blk.scales[g - 8] >> 4;
      const int hi = (blk.scales[8 + g % 4] >> (2 * (g / 4))) & 3;
      const float dl = d * static_cast<float>((lo | (hi << 4)) - 32);
      // Element 16 g + i has its high bit in bit g / 2 of hmask[16 (g % 2) + i]; a clear bit
      // subtracts 4.
      const CrumbGroup c = Crumbs(blk.qs, g);
      const uint8_t* hmask = blk.hmask + 16 * (g % 2);
      const int bit = g / 2;
      Scale<16>(
          [c, hmask, bit](int i) {
            return ((c.bytes[i] >> c.shift) & 3) - (((hmask[i] >> bit) & 1) ? 0 : 4);
          },
          dl, dst + 16 * g);
    }
  }
}

// The 6-bit scale and min of sub-block j (of 8) in the 12-byte K-quant scale field: bytes 0..3
// hold scales 0..3 (low 6 bits), bytes 4..7 mins 0..3; sub-blocks 4..7 take their low 4 bits
// from bytes 8..11 (scale low nibble, min high nibble) and their top 2 bits from the top bits of
// bytes 0..3 (scales) and 4..7 (mins).
void ScaleMinK4(const uint8_t* q, int j, int* scale, int* min) {
  if (j < 4) {
    *scale = q[j] & 63;
    *min = q[j + 4] & 63;
  } else {
    *scale = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
    *min = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// Q4_K and Q5_K: sub-block j of 32 is the low (j even) or high (j odd) nibbles of the 32 bytes
// qs[32 (j / 2) ..]; Q5_K's fifth bit of element 32 j + l is bit j of qh[l].
template <bool kFifthBit>
inline void DequantizeK4(const uint8_t* scales, const uint8_t* qs, const uint8_t* qh, float d,
                         float dmin, float* __restrict dst) {
  float dl[8], ml[8];
  for (int j = 0; j < 8; ++j) {
    int scale, min;
    ScaleMinK4(scales, j, &scale, &min);
    dl[j] = d * static_cast<float>(scale);
    ml[j] = dmin * static_cast<float>(min);
  }
  for (int j = 0; j < 8; ++j) {
    const uint8_t* q = qs + 32 * (j / 2);
    const int shift = 4 * (j % 2);
    if constexpr (kFifthBit) {
      ScaleSubMin<32>(
          [q, qh, shift, j](int l) { return ((q[l] >> shift) & 0x0F) | (((qh[l] >> j) & 1) << 4); },
          dl[j], ml[j], dst + 32 * j);
    } else {
      ScaleSubMin<32>([q, shift](int l) { return (q[l] >> shift) & 0x0F; }, dl[j], ml[j],
                      dst + 32 * j);
    }
  }
}

PAGODA_KERNEL_CLONES void Q4_KToFloat(const void* __restrict src, float* __restrict dst,
                                      int64_t num_blocks) {
  const auto* blocks = Blocks<BlockQ4_K>(src);
  for (int64_t b = 0; b < num_blocks; ++b, dst += kQKK) {
    const BlockQ4_K& blk = blocks[b];
    DequantizeK4<false>(blk.scales, blk.qs, nullptr, Half(blk.d), Half(blk.dmin), dst);
  }
}

PAGODA_KERNEL_CLONES void Q5_KToFloat(const void* __restrict src, float* __restrict dst,
                                      int64_t num_blocks) {
  const auto* blocks = Blocks<BlockQ5_K>(src);
  for (int64_t b = 0; b < num_blocks; ++b, dst += kQKK) {
    const BlockQ5_K& blk = blocks[b];
    DequantizeK4<true>(blk.scales, blk.qs, blk.qh, Half(blk.d), Half(blk.dmin), dst);
  }
}

PAGODA_KERNEL_CLONES void Q6_KToFloat(const void* __restrict src, float* __restrict dst,
                                      int64_t num_blocks) {
  const auto* blocks = Blocks<BlockQ6_K>(src);
  for (int64_t b = 0; b < num_blocks; ++b, dst += kQKK) {
    const BlockQ6_K& blk = blocks[b];
    const float d = Half(blk.d);
    // Element 128 h + 32 s + l (group g = 8 h + 2 s + l / 16): low 4 bits in
    // ql[64 h + 32 (s % 2) + l] (the low nibble for s < 2, the high one for s >= 2), high 2 bits
    // in bits 2s of qh[32 h + l]; offset by 32.
    for (int g = 0; g < kQKK / 16; ++g) {
      const int h = g / 8, s = (g % 8) / 2, half = g % 2;
      const uint8_t* ql = blk.ql + 64 * h + 32 * (s % 2) + 16 * half;
      const uint8_t* qh = blk.qh + 32 * h + 16 * half;
      const int ql_shift = 4 * (s / 2);
      Scale<16>(
          [ql, qh, ql_shift, s](int i) {
            return (((ql[i] >> ql_shift) & 0x0F) | (((qh[i] >> (2 * s)) & 3) << 4)) - 32;
          },
          d * static_cast<float>(blk.scales[g]), dst + 16 * g);
    }
  }
}

void F32FromFloat(const float* __restrict src, void* __restrict dst, int64_t n) {
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}

PAGODA_KERNEL_CLONES void F16FromFloat(const float* __restrict src, void* __restrict dst,
                                       int64_t n) {
  auto* h = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) h[i] = FloatToHalf(src[i]);
}

PAGODA_KERNEL_CLONES void Bf16FromFloat(const float* __restrict src, void* __restrict dst,
                                        int64_t n) {
  auto* h = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) h[i] = FloatToBf16(src[i]);
}

// d = max|x| / 127 in float32, q = round-half-away(x * (1 / d)), d stored as float16 (ggml's
// quantize_row_q8_0_ref and gguf's Q8_0.quantize_blocks). Non-finite inputs, outside that
// reference's domain, are clamped rather than cast out of range.
PAGODA_KERNEL_CLONES void Q8_0FromFloat(const float* __restrict src, void* __restrict dst,
                                        int64_t num_blocks) {
  auto* blocks = static_cast<BlockQ8_0*>(dst);
  for (int64_t b = 0; b < num_blocks; ++b, src += kQK) {
    float amax = 0.0f;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(src[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < kQK; ++j) {
      const float q = std::round(src[j] * id);
      blocks[b].qs[j] = static_cast<int8_t>(std::isnan(q) ? 0.0f : std::clamp(q, -127.0f, 127.0f));
    }
    const uint16_t d16 = FloatToHalf(d);
    std::memcpy(blocks[b].d, &d16, sizeof(d16));
  }
}

constexpr std::array<BlockFormat, kNumDTypes> kFormats = {{
    {F32ToFloat, F32FromFloat},    // kF32
    {F16ToFloat, F16FromFloat},    // kF16
    {Bf16ToFloat, Bf16FromFloat},  // kBF16
    {Q8_0ToFloat, Q8_0FromFloat},  // kQ8_0
    {Q4_0ToFloat, nullptr},        // kQ4_0
    {Q4_1ToFloat, nullptr},        // kQ4_1
    {Q5_0ToFloat, nullptr},        // kQ5_0
    {Q5_1ToFloat, nullptr},        // kQ5_1
    {Q2_KToFloat, nullptr},        // kQ2_K
    {Q3_KToFloat, nullptr},        // kQ3_K
    {Q4_KToFloat, nullptr},        // kQ4_K
    {Q5_KToFloat, nullptr},        // kQ5_K
    {Q6_KToFloat, nullptr},        // kQ6_K
}};

}  // namespace

const BlockFormat& FormatOf(DType dtype) { return kFormats[static_cast<int>(dtype)]; }

}  // namespace pagoda::kernels::internal
