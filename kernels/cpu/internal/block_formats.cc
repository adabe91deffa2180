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
// order, as gguf.quants' dequantize_blocks; sub-block scales such as d * sc are rounded to
// float32 first there too.

void F32ToFloat(const void* src, float* dst, int64_t n) {
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}

PAGODA_KERNEL_CLONES void F16ToFloat(const void* src, float* dst, int64_t n) {
  const auto* h = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; ++i) dst[i] = HalfToFloat(h[i]);
}

PAGODA_KERNEL_CLONES void Bf16ToFloat(const void* src, float* dst, int64_t n) {
  const auto* h = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; ++i) dst[i] = internal::Bf16ToFloat(h[i]);
}

PAGODA_KERNEL_CLONES void Q8_0ToFloat(const void* src, float* dst, int64_t num_blocks) {
  const auto* blocks = Blocks<BlockQ8_0>(src);
  for (int64_t b = 0; b < num_blocks; ++b, dst += kQK) {
    const float d = Half(blocks[b].d);
    for (int j = 0; j < kQK; ++j) dst[j] = static_cast<float>(blocks[b].qs[j]) * d;
  }
}

PAGODA_KERNEL_CLONES void Q4_0ToFloat(const void* src, float* dst, int64_t num_blocks) {
  const auto* blocks = Blocks<BlockQ4_0>(src);
  for (int64_t b = 0; b < num_blocks; ++b, dst += kQK) {
    const float d = Half(blocks[b].d);
    const uint8_t* qs = blocks[b].qs;
    for (int j = 0; j < kQK / 2; ++j) {
      dst[j] = d * static_cast<float>((qs[j] & 0x0F) - 8);
      dst[j + kQK / 2] = d * static_cast<float>((qs[j] >> 4) - 8);
    }
  }
}

PAGODA_KERNEL_CLONES void Q4_1ToFloat(const void* src, float* dst, int64_t num_blocks) {
  const auto* blocks = Blocks<BlockQ4_1>(src);
  for (int64_t b = 0; b < num_blocks; ++b, dst += kQK) {
    const float d = Half(blocks[b].d);
    const float m = Half(blocks[b].m);
    const uint8_t* qs = blocks[b].qs;
    for (int j = 0; j < kQK / 2; ++j) {
      dst[j] = d * static_cast<float>(qs[j] & 0x0F) + m;
      dst[j + kQK / 2] = d * static_cast<float>(qs[j] >> 4) + m;
    }
  }
}

uint32_t LoadU32(const uint8_t (&field)[4]) {
  uint32_t v;
  std::memcpy(&v, field, sizeof(v));
  return v;
}

PAGODA_KERNEL_CLONES void Q5_0ToFloat(const void* src, float* dst, int64_t num_blocks) {
  const auto* blocks = Blocks<BlockQ5_0>(src);
  for (int64_t b = 0; b < num_blocks; ++b, dst += kQK) {
    const float d = Half(blocks[b].d);
    const uint32_t qh = LoadU32(blocks[b].qh);
    const uint8_t* qs = blocks[b].qs;
    for (int j = 0; j < kQK / 2; ++j) {
      const int lo = (qs[j] & 0x0F) | static_cast<int>(((qh >> j) & 1u) << 4);
      const int hi = (qs[j] >> 4) | static_cast<int>(((qh >> (j + kQK / 2)) & 1u) << 4);
      dst[j] = d * static_cast<float>(lo - 16);
      dst[j + kQK / 2] = d * static_cast<float>(hi - 16);
    }
  }
}

PAGODA_KERNEL_CLONES void Q5_1ToFloat(const void* src, float* dst, int64_t num_blocks) {
  const auto* blocks = Blocks<BlockQ5_1>(src);
  for (int64_t b = 0; b < num_blocks; ++b, dst += kQK) {
    const float d = Half(blocks[b].d);
    const float m = Half(blocks[b].m);
    const uint32_t qh = LoadU32(blocks[b].qh);
    const uint8_t* qs = blocks[b].qs;
    for (int j = 0; j < kQK / 2; ++j) {
      const int lo = (qs[j] & 0x0F) | static_cast<int>(((qh >> j) & 1u) << 4);
      const int hi = (qs[j] >> 4) | static_cast<int>(((qh >> (j + kQK / 2)) & 1u) << 4);
      dst[j] = d * static_cast<float>(lo) + m;
      dst[j + kQK / 2] = d * static_cast<float>(hi) + m;
    }
  }
}

PAGODA_KERNEL_CLONES void Q2_KToFloat(const void* src, float* dst, int64_t num_blocks) {
  const auto* blocks = Blocks<BlockQ2_K>(src);
  for (int64_t b = 0; b < num_blocks; ++b) {
    const BlockQ2_K& blk = blocks[b];
    const float d = Half(blk.d);
    const float dmin = Half(blk.dmin);
    // Element 128 h + 32 s + l is bits 2s..2s+1 of qs[32 h + l]; its 16-element group is
    // 8 h + 2 s + l / 16.
    for (int h = 0; h < 2; ++h) {
      for (int s = 0; s < 4; ++s) {
        for (int half = 0; half < 2; ++half) {
          const uint8_t sc = blk.scales[8 * h + 2 * s + half];
          const float dl = d * static_cast<float>(sc & 0x0F);
          const float ml = dmin * static_cast<float>(sc >> 4);
          const uint8_t* q = blk.qs + 32 * h + 16 * half;
          float* out = dst + 128 * h + 32 * s + 16 * half;
          for (int l = 0; l < 16; ++l) out[l] = dl * static_cast<float>((q[l] >> (2 * s)) & 3) - ml;
        }
      }
    }
    dst += kQKK;
  }
}

PAGODA_KERNEL_CLONES void Q3_KToFloat(const void* src, float* dst, int64_t num_blocks) {
  const auto* blocks = Blocks<BlockQ3_K>(src);
  for (int64_t b = 0; b < num_blocks; ++b) {
    const BlockQ3_K& blk = blocks[b];
    const float d = Half(blk.d);
    // Scale i: low 4 bits from the nibbles of bytes 0..7 (low nibbles first), high 2 bits from
    // bits 2 (i / 4) of byte 8 + i % 4.
    float dl[16];
    for (int i = 0; i < 16; ++i) {
      const int low = i < 8 ? blk.scales[i] & 0x0F : blk.scales[i - 8] >> 4;
      const int high = (blk.scales[8 + i % 4] >> (2 * (i / 4))) & 3;
      dl[i] = d * static_cast<float>((low | (high << 4)) - 32);
    }
    for (int h = 0; h < 2; ++h) {
      for (int s = 0; s < 4; ++s) {
        const int bit = 4 * h + s;  // hmask bit of elements 32 bit .. 32 bit + 31
        for (int l = 0; l < 32; ++l) {
          const int low = (blk.qs[32 * h + l] >> (2 * s)) & 3;
          const int minus = (blk.hmask[l] >> bit) & 1 ? 0 : 4;
          dst[32 * bit + l] = dl[2 * bit + l / 16] * static_cast<float>(low - minus);
        }
      }
    }
    dst += kQKK;
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

PAGODA_KERNEL_CLONES void Q4_KToFloat(const void* src, float* dst, int64_t num_blocks) {
  const auto* blocks = Blocks<BlockQ4_K>(src);
  for (int64_t b = 0; b < num_blocks; ++b) {
    const BlockQ4_K& blk = blocks[b];
    const float d = Half(blk.d);
    const float dmin = Half(blk.dmin);
    for (int j = 0; j < 8; ++j) {
      int scale, min;
      ScaleMinK4(blk.scales, j, &scale, &min);
      const float dl = d * static_cast<float>(scale);
      const float ml = dmin * static_cast<float>(min);
      const uint8_t* q = blk.qs + 32 * (j / 2);
      const int shift = 4 * (j % 2);
      float* out = dst + 32 * j;
      for (int l = 0; l < 32; ++l) out[l] = dl * static_cast<float>((q[l] >> shift) & 0x0F) - ml;
    }
    dst += kQKK;
  }
}

PAGODA_KERNEL_CLONES void Q5_KToFloat(const void* src, float* dst, int64_t num_blocks) {
  const auto* blocks = Blocks<BlockQ5_K>(src);
  for (int64_t b = 0; b < num_blocks; ++b) {
    const BlockQ5_K& blk = blocks[b];
    const float d = Half(blk.d);
    const float dmin = Half(blk.dmin);
    for (int j = 0; j < 8; ++j) {
      int scale, min;
      ScaleMinK4(blk.scales, j, &scale, &min);
      const float dl = d * static_cast<float>(scale);
      const float ml = dmin * static_cast<float>(min);
      const uint8_t* q = blk.qs + 32 * (j / 2);
      const int shift = 4 * (j % 2);
      float* out = dst + 32 * j;
      for (int l = 0; l < 32; ++l) {
        const int v = ((q[l] >> shift) & 0x0F) | (((blk.qh[l] >> j) & 1) << 4);
        out[l] = dl * static_cast<float>(v) - ml;
      }
    }
    dst += kQKK;
  }
}

PAGODA_KERNEL_CLONES void Q6_KToFloat(const void* src, float* dst, int64_t num_blocks) {
  const auto* blocks = Blocks<BlockQ6_K>(src);
  for (int64_t b = 0; b < num_blocks; ++b) {
    const BlockQ6_K& blk = blocks[b];
    const float d = Half(blk.d);
    float dl[16];
    for (int i = 0; i < 16; ++i) dl[i] = d * static_cast<float>(blk.scales[i]);
    // Element 128 h + 32 s + l: low 4 bits in ql[64 h + 32 (s % 2) + l] (the low nibble for
    // s < 2, the high one for s >= 2), high 2 bits in bits 2s of qh[32 h + l].
    for (int h = 0; h < 2; ++h) {
      for (int s = 0; s < 4; ++s) {
        const uint8_t* ql = blk.ql + 64 * h + 32 * (s % 2);
        const int ql_shift = 4 * (s / 2);
        const uint8_t* qh = blk.qh + 32 * h;
        float* out = dst + 128 * h + 32 * s;
        const float* scale = dl + 8 * h + 2 * s;
        for (int l = 0; l < 32; ++l) {
          const int v = ((ql[l] >> ql_shift) & 0x0F) | (((qh[l] >> (2 * s)) & 3) << 4);
          out[l] = scale[l / 16] * static_cast<float>(v - 32);
        }
      }
    }
    dst += kQKK;
  }
}

void F32FromFloat(const float* src, void* dst, int64_t n) {
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}

PAGODA_KERNEL_CLONES void F16FromFloat(const float* src, void* dst, int64_t n) {
  auto* h = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) h[i] = FloatToHalf(src[i]);
}

PAGODA_KERNEL_CLONES void Bf16FromFloat(const float* src, void* dst, int64_t n) {
  auto* h = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) h[i] = FloatToBf16(src[i]);
}

// d = max|x| / 127 in float32, q = round-half-away(x * (1 / d)), d stored as float16 (ggml's
// quantize_row_q8_0_ref and gguf's Q8_0.quantize_blocks). Non-finite inputs, outside that
// reference's domain, are clamped rather than cast out of range.
PAGODA_KERNEL_CLONES void Q8_0FromFloat(const float* src, void* dst, int64_t num_blocks) {
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
