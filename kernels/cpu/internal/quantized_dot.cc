#include "kernels/cpu/internal/quantized_dot.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/internal/half.h"
#include "kernels/cpu/internal/kquant_dot.h"
#include "kernels/cpu/internal/packed_gemm.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define PAGODA_QDOT_X86 1
#include <immintrin.h>

#include "kernels/cpu/internal/avx512_tile.h"
// Functions compiled for one ISA each, called only after CpuSupports said yes (no -march: the
// rest of the binary stays baseline x86-64). Helpers carry the attribute of the narrowest
// caller; GCC and clang inline them into wider callers.
#define PAGODA_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
#define PAGODA_TARGET_AVX512 \
  __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))
#else
#define PAGODA_QDOT_X86 0
#endif

namespace pagoda::kernels::internal {
namespace {

// The GGML block layouts (block_formats.cc), as byte offsets; -1: no such field.
struct FormatQ8_0 {
  static constexpr DType kDType = DType::kQ8_0;
  [[maybe_unused]] static constexpr int kBytes = 34, kQs = 2, kQh = -1, kMin = -1, kOffset = 0;
  static constexpr bool kSigned = true;  // int8 quants; the others are unsigned 4 or 5 bits
};
struct FormatQ4_0 {
  static constexpr DType kDType = DType::kQ4_0;
  [[maybe_unused]] static constexpr int kBytes = 18, kQs = 2, kQh = -1, kMin = -1, kOffset = 8;
  static constexpr bool kSigned = false;
};
struct FormatQ4_1 {
  static constexpr DType kDType = DType::kQ4_1;
  [[maybe_unused]] static constexpr int kBytes = 20, kQs = 4, kQh = -1, kMin = 2, kOffset = 0;
  static constexpr bool kSigned = false;
};
struct FormatQ5_0 {
  static constexpr DType kDType = DType::kQ5_0;
  [[maybe_unused]] static constexpr int kBytes = 22, kQs = 6, kQh = 2, kMin = -1, kOffset = 16;
  static constexpr bool kSigned = false;
};
struct FormatQ5_1 {
  static constexpr DType kDType = DType::kQ5_1;
  [[maybe_unused]] static constexpr int kBytes = 24, kQs = 8, kQh = 4, kMin = 2, kOffset = 0;
  static constexpr bool kSigned = false;
};

constexpr int kQK = kQ8BlockElements;

uint32_t LoadU32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// What a block adds besides dw da sum(q a): its min (mw, 0 where the format has none) or offset
// times the activations' sum.
template <typename F>
inline float Extra(float dw, float mw, float da, int32_t a_sum) {
  if constexpr (F::kMin >= 0) {
    return mw * da * static_cast<float>(a_sum);
  } else if constexpr (F::kOffset != 0) {
    return -dw * da * static_cast<float>(F::kOffset * a_sum);
  } else {
    return 0.0f;
  }
}

// Quant l of a block (unsigned for all but Q8_0, offset not applied).
template <typename F>
inline int32_t QuantAt(const uint8_t* block, int l) {
  if constexpr (F::kSigned) {
    return static_cast<int8_t>(block[F::kQs + l]);
  } else {
    const uint8_t* qs = block + F::kQs;
    int32_t q = l < kQK / 2 ? qs[l] & 0x0F : qs[l - kQK / 2] >> 4;
    if constexpr (F::kQh >= 0) q |= static_cast<int32_t>((LoadU32(block + F::kQh) >> l) & 1u) << 4;
    return q;
  }
}

template <typename F>
float DotScalar(const void* w, const Q8Block* a, int64_t num_blocks) {
  const auto* base = static_cast<const uint8_t*>(w);
  float total = 0.0f;
  for (int64_t b = 0; b < num_blocks; ++b) {
    const uint8_t* block = base + b * F::kBytes;
    int32_t sum = 0;
    for (int l = 0; l < kQK; ++l) sum += QuantAt<F>(block, l) * a[b].qs[l];
    const float dw = HalfToFloat(LoadU16(block));
    const float mw = F::kMin >= 0 ? HalfToFloat(LoadU16(block + F::kMin)) : 0.0f;
    total += dw * a[b].d * static_cast<float>(sum) + Extra<F>(dw, mw, a[b].d, a[b].sum);
  }
  return total;
}

inline void StoreResult(const QuantizedGemmArgs& g, int64_t i, int64_t j, float value) {
  float* out = g.c + i * g.ldc + j;
  *out = g.beta == 0.0f ? g.alpha * value : g.alpha * value + g.beta * *out;
}

#if PAGODA_QDOT_X86

// The 32 quants of a block as bytes in element order (int8 for Q8_0, else 0..15 or 0..31).
template <typename F>
PAGODA_TARGET_AVX2 inline __m256i QuantsAvx2(const uint8_t* block) {
  if constexpr (F::kSigned) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + F::kQs));
  } else {
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block + F::kQs));
    const __m128i m4 = _mm_set1_epi8(0x0F);
    __m256i q = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(raw, 4), m4), _mm_and_si128(raw, m4));
    if constexpr (F::kQh >= 0) {
      // Byte j gets byte j / 8 of qh, then keeps bit j % 8 of it as 0x10.
      const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2,
                                              2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
      const __m256i bits = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201ull));
      const __m256i qh = _mm256_shuffle_epi8(
          _mm256_set1_epi32(static_cast<int32_t>(LoadU32(block + F::kQh))), spread);
      const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(qh, bits), bits);
      q = _mm256_or_si256(q, _mm256_and_si256(set, _mm256_set1_epi8(0x10)));
    }
    return q;
  }
}

PAGODA_TARGET_AVX2 inline __m256i LoadActivations(const Q8Block& a) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs));
}

PAGODA_TARGET_AVX2 inline float HalfAt(const uint8_t* p) { return _cvtsh_ss(LoadU16(p)); }

template <typename F>
PAGODA_TARGET_AVX2 inline float MinOf(const uint8_t* block) {
  if constexpr (F::kMin >= 0) {
    return HalfAt(block + F::kMin);
  } else {
    return 0.0f;
  }
}

// 8 int32 partial sums of q * a (maddubs never saturates: |q| <= 128 for Q8_0, q <= 31 for
// the others, |a| <= 127, so a pair is at most 2 * 128 * 127 < 2^15).
template <typename F>
PAGODA_TARGET_AVX2 inline __m256i BlockSumsAvx2(__m256i q, __m256i a) {
  __m256i pairs;
  if constexpr (F::kSigned) {
    pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(a, q));
  } else {
    pairs = _mm256_maddubs_epi16(q, a);
  }
  return _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
}

PAGODA_TARGET_AVX2 inline float HorizontalSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <typename F>
PAGODA_TARGET_AVX2 inline __m256 AccumulateBlockAvx2(const uint8_t* block, const Q8Block& a,
                                                     __m256 acc, float* extra) {
  const __m256i sums = BlockSumsAvx2<F>(QuantsAvx2<F>(block), LoadActivations(a));
  const float dw = HalfAt(block);
  *extra += Extra<F>(dw, MinOf<F>(block), a.d, a.sum);
  return _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), _mm256_set1_ps(dw * a.d), acc);
}

template <typename F>
PAGODA_TARGET_AVX2 float DotAvx2(const void* w, const Q8Block* a, int64_t num_blocks) {
  const auto* base = static_cast<const uint8_t*>(w);
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  float extra = 0.0f;
  int64_t b = 0;
  for (; b + 2 <= num_blocks; b += 2) {  // two chains hide the FMA latency
    acc0 = AccumulateBlockAvx2<F>(base + b * F::kBytes, a[b], acc0, &extra);
    acc1 = AccumulateBlockAvx2<F>(base + (b + 1) * F::kBytes, a[b + 1], acc1, &extra);
  }
  if (b < num_blocks) acc0 = AccumulateBlockAvx2<F>(base + b * F::kBytes, a[b], acc0, &extra);
  return HorizontalSum(_mm256_add_ps(acc0, acc1)) + extra;
}

// 16 int32 partial sums of two blocks' q * a in one vpdpbusd (unsigned weights times signed
// activations; Q8_0's signs move onto the activations first). No saturation: int32 sums.
template <typename F>
PAGODA_TARGET_AVX512 inline __m512i PairSumsAvx512(__m512i q, __m512i a) {
  if constexpr (F::kSigned) {
    const __mmask64 negative = _mm512_movepi8_mask(q);
    a = _mm512_mask_sub_epi8(a, negative, _mm512_setzero_si512(), a);
    q = _mm512_abs_epi8(q);
  }
  return _mm512_dpbusd_epi32(_mm512_setzero_si512(), q, a);
}

PAGODA_TARGET_AVX512 inline __m512i Concat(__m256i low, __m256i high) {
  return _mm512_inserti64x4(_mm512_zextsi256_si512(low), high, 1);
}

template <typename F>
PAGODA_TARGET_AVX512 float DotAvx512(const void* w, const Q8Block* a, int64_t num_blocks) {
  const auto* base = static_cast<const uint8_t*>(w);
  __m512 acc = _mm512_setzero_ps();
  float extra = 0.0f;
  int64_t b = 0;
  for (; b + 2 <= num_blocks; b += 2) {
    const uint8_t* b0 = base + b * F::kBytes;
    const uint8_t* b1 = b0 + F::kBytes;
    const __m512i sums =
        PairSumsAvx512<F>(Concat(QuantsAvx2<F>(b0), QuantsAvx2<F>(b1)),
                          Concat(LoadActivations(a[b]), LoadActivations(a[b + 1])));
    const float dw0 = HalfAt(b0), dw1 = HalfAt(b1);
    extra += Extra<F>(dw0, MinOf<F>(b0), a[b].d, a[b].sum) +
             Extra<F>(dw1, MinOf<F>(b1), a[b + 1].d, a[b + 1].sum);
    // Lanes 0..7 belong to the first block, 8..15 to the second.
    const __m512 scale = _mm512_castpd_ps(
        _mm512_insertf64x4(_mm512_zextpd256_pd512(_mm256_castps_pd(_mm256_set1_ps(dw0 * a[b].d))),
                           _mm256_castps_pd(_mm256_set1_ps(dw1 * a[b + 1].d)), 1));
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), scale, acc);
  }
  // Halves added through memory: GCC 12's _mm512_reduce_add_ps trips -Wuninitialized.
  alignas(64) float halves[16];
  _mm512_store_ps(halves, acc);
  float total = HorizontalSum(_mm256_add_ps(_mm256_load_ps(halves), _mm256_load_ps(halves + 8)));
  if (b < num_blocks) {  // an odd last block: the AVX2 way
    total += HorizontalSum(
        AccumulateBlockAvx2<F>(base + b * F::kBytes, a[b], _mm256_setzero_ps(), &extra));
  }
  return total + extra;
}

// The batch-invariant GEMM (QuantizedGemmFor) on AVX-512: weight rows in lanes. A vector holds
// 16 weight rows; each vpdpbusd multiplies 4 consecutive quants of a block in each of them by the
// same 4 activation quants (one dword broadcast), so 8 of them leave each lane with its row's
// whole 32-element block sum in int32 (exact), and the block's fp32 work (one convert, one
// multiply of the scales, one or two FMAs) is done once per 16 x 32 multiply-adds instead of once
// per 8 lanes of partial sums. Element (i, j) is therefore computed as
//   acc = 0; for each block b in order:
//     acc = fma(float(isum_b), dw_b * da_b, acc)       isum_b = sum q a - offset * sum a (int32)
//     acc = fma(mw_b, da_b * sum_b(a), acc)            formats with a min only
//   C = alpha * acc (+ beta * C)
// whatever lane, vector, tile or thread it falls in, and however many activation rows share the
// tile: the batch invariance of the contract. Every activation quant is multiplied by an unsigned
// weight byte: Q8_0's int8 quants move to q + 128 (xor 0x80), and the formats with an offset (Q8_0
// as moved: 128, Q4_0: 8, Q5_0: 16) start the int32 sum at -offset * sum(a).
template <typename F>
constexpr int32_t kUnsignedOffset = F::kSigned ? 128 : F::kOffset;

using avx512_tile::kLanes;
using avx512_tile::PrefetchPart;
// The masked forms with all lanes: GCC 12 reports the unmasked ones' undefined pass-through
// operands as -Wuninitialized once inlined here.
constexpr __mmask16 kAll = 0xFFFF;

// One block of 16 weight rows, transposed: q[g] holds quants 4g .. 4g + 3 of each row as
// unsigned bytes (lane r: row r), then the rows' scales and mins as floats. Plain arrays, so that
// the std::vector holding them needs no AVX-512 outside these functions.
struct alignas(64) BlockVector {
  uint8_t q[kQK / 4][64];
  float scale[kLanes];
  float min[kLanes];
};

// Block b of the 16 rows at `rows` (row r at rows + r * row_bytes; lanes outside `valid` read
// nothing and hold zeros) by gathers of one dword per row.
// 16 weight rows of a vector: their addresses (rows past the real ones repeat the last real one,
// so that loads stay in bounds; their lanes are zeroed), as offsets from the first for gathers.
struct RowSet {
  const uint8_t* rows[kLanes];
  __m512i offsets;
  __mmask16 valid;
};

PAGODA_TARGET_AVX512 inline RowSet MakeRowSet(const uint8_t* first, int64_t row_bytes,
                                              int64_t real_rows) {
  RowSet set;
  const int64_t n = std::clamp<int64_t>(real_rows, 1, kLanes);
  for (int r = 0; r < kLanes; ++r) set.rows[r] = first + std::min<int64_t>(r, n - 1) * row_bytes;
  set.offsets =
      _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                         _mm512_set1_epi32(static_cast<int32_t>(row_bytes)));
  set.valid = static_cast<__mmask16>((1u << std::clamp<int64_t>(real_rows, 0, kLanes)) - 1u);
  return set;
}

// One dword of each real row at byte `offset` of block b.
PAGODA_TARGET_AVX512 inline __m512i GatherRows(const RowSet& set, int64_t block_offset,
                                               int offset) {
  return _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), set.valid, set.offsets,
                                     set.rows[0] + block_offset + offset, 1);
}

// Dwords 0..3 of 16 bytes at `offset` of block b in each row, transposed: out[d] lane r holds
// dword d of row r. Four rows per register by 128-bit loads, then two rounds of two-source
// permutes (cheaper here than gathers).
PAGODA_TARGET_AVX512 inline void LoadTransposed(const RowSet& set, int64_t block_offset, int offset,
                                                __m512i out[4]) {
  __m512i z[4];
  for (int q = 0; q < 4; ++q) {
    const auto at = [&](int r) {
      return _mm_loadu_si128(
          reinterpret_cast<const __m128i*>(set.rows[4 * q + r] + block_offset + offset));
    };
    z[q] = _mm512_inserti32x4(
        _mm512_inserti32x4(_mm512_inserti32x4(_mm512_zextsi128_si512(at(0)), at(1), 1), at(2), 2),
        at(3), 3);
  }
  // z[q] lane 4 r + d: row 4 q + r, dword d. t[h][p]: rows 8 p .. 8 p + 7, dwords 2 h, 2 h + 1
  // (lane 8 e + r: dword 2 h + e of row 8 p + r).
  const __m512i pick0 = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29);
  const __m512i pick1 =
      _mm512_setr_epi32(2, 6, 10, 14, 18, 22, 26, 30, 3, 7, 11, 15, 19, 23, 27, 31);
  const __m512i low = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
  const __m512i high =
      _mm512_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  for (int h = 0; h < 2; ++h) {
    const __m512i pick = h == 0 ? pick0 : pick1;
    const __m512i t0 = _mm512_permutex2var_epi32(z[0], pick, z[1]);
    const __m512i t1 = _mm512_permutex2var_epi32(z[2], pick, z[3]);
    out[2 * h] = _mm512_permutex2var_epi32(t0, low, t1);
    out[2 * h + 1] = _mm512_permutex2var_epi32(t0, high, t1);
  }
}

template <typename F>
PAGODA_TARGET_AVX512 inline void UnpackBlock(const RowSet& set, int64_t b, BlockVector* out) {
  const int64_t block_offset = b * F::kBytes;
  if constexpr (F::kSigned) {
    const __m512i flip = _mm512_set1_epi32(static_cast<int32_t>(0x80808080u));
    for (int half = 0; half < 2; ++half) {
      __m512i q[4];
      LoadTransposed(set, block_offset, F::kQs + 16 * half, q);
      for (int d = 0; d < 4; ++d) {
        _mm512_store_si512(out->q[4 * half + d], _mm512_maskz_xor_epi32(set.valid, q[d], flip));
      }
    }
  } else {
    const __m512i low = _mm512_set1_epi32(0x0F0F0F0F);
    [[maybe_unused]] __m512i qh;
    if constexpr (F::kQh >= 0) qh = GatherRows(set, block_offset, F::kQh);
    __m512i raw[4];
    LoadTransposed(set, block_offset, F::kQs, raw);
    for (int g = 0; g < kQK / 8; ++g) {  // byte l of qs holds quants l (low) and l + 16 (high)
      __m512i q[2] = {
          _mm512_maskz_and_epi32(set.valid, raw[g], low),
          _mm512_maskz_and_epi32(set.valid, _mm512_maskz_srli_epi32(kAll, raw[g], 4), low)};
      if constexpr (F::kQh >= 0) {
        // Bit l of qh is bit 4 of quant l: group h's 4 bits spread to bit 4 of its 4 bytes (the
        // multiply places bit t at bit 8 t without carries).
        for (int half = 0; half < 2; ++half) {
          const int h = g + half * kQK / 8;
          const __m512i bits =
              _mm512_and_si512(_mm512_maskz_srli_epi32(kAll, qh, 4 * h), _mm512_set1_epi32(15));
          const __m512i high = _mm512_maskz_slli_epi32(
              kAll,
              _mm512_and_si512(_mm512_mullo_epi32(bits, _mm512_set1_epi32(0x00204081)),
                               _mm512_set1_epi32(0x01010101)),
              4);
          q[half] = _mm512_or_si512(q[half], high);
        }
      }
      _mm512_store_si512(out->q[g], q[0]);
      _mm512_store_si512(out->q[g + kQK / 8], q[1]);
    }
  }
  // The float16 scale is the block's first field, the min (if any) its second.
  const __m512i scales = GatherRows(set, block_offset, 0);
  _mm512_store_ps(out->scale,
                  _mm512_maskz_cvtph_ps(kAll, _mm512_maskz_cvtepi32_epi16(kAll, scales)));
  if constexpr (F::kMin >= 0) {
    static_assert(F::kMin == 2);
    _mm512_store_ps(out->min, _mm512_maskz_cvtph_ps(
                                  kAll, _mm512_maskz_cvtepi32_epi16(
                                            kAll, _mm512_maskz_srli_epi32(kAll, scales, 16))));
  }
}

// The weight rows of one tile: vectors of 16 rows from row j0 on, `rows` of them real.
struct WeightTile {
  const uint8_t* w;             // row j0
  int64_t rows;                 // real rows from j0 on (lanes past them are masked)
  const BlockVector* unpacked;  // block b's first vector at unpacked[b * block_stride], or null:
  int64_t block_stride;         // unpack each block when it is used
  const uint8_t* next;          // the next tile's bytes, prefetched while this one is unpacked
  int64_t next_bytes;
};

// Unpacks `vectors` vectors of tile t (all its blocks) into out ([num_blocks, vectors]).
template <typename F>
PAGODA_TARGET_AVX512 void UnpackTile(const QuantizedGemmArgs& g, const uint8_t* w, int64_t rows,
                                     int64_t vectors, BlockVector* out, const uint8_t* next,
                                     int64_t next_bytes) {
  for (int64_t v = 0; v < vectors; ++v) {
    const RowSet set = MakeRowSet(w + v * kLanes * g.row_bytes, g.row_bytes, rows - v * kLanes);
    for (int64_t b = 0; b < g.num_blocks; ++b) {
      PrefetchPart(next, next_bytes, v * g.num_blocks + b, vectors * g.num_blocks);
      UnpackBlock<F>(set, b, out + b * vectors + v);
    }
  }
}

// Activation rows i0 .. i0 + MR - 1 against the first NV vectors of weight rows of tile t.
template <typename F, int MR, int NV>
PAGODA_TARGET_AVX512 void TileAvx512(const QuantizedGemmArgs& g, int64_t i0, int64_t j0,
                                     const WeightTile& t) {
  const int64_t a_stride = Q8RowStride(g.num_blocks);
  const int64_t s_stride = ScaledSumsStride(g.num_blocks);
  const Q8Block* a[MR];
  const float* sums[MR];
  for (int i = 0; i < MR; ++i) {
    a[i] = g.a + (i0 + i) * a_stride;
    sums[i] = g.scaled_sums + (i0 + i) * s_stride;
  }
  RowSet sets[NV];
  if (t.unpacked == nullptr) {
    for (int v = 0; v < NV; ++v) {
      sets[v] = MakeRowSet(t.w + v * kLanes * g.row_bytes, g.row_bytes, t.rows - v * kLanes);
    }
  }
  __m512 acc[MR][NV];
  for (int i = 0; i < MR; ++i) {
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  }
  BlockVector local[NV];
  for (int64_t b = 0; b < g.num_blocks; ++b) {
    const BlockVector* w = local;
    if (t.unpacked != nullptr) {
      w = t.unpacked + b * t.block_stride;
    } else {
      PrefetchPart(t.next, t.next_bytes, b, g.num_blocks);
      for (int v = 0; v < NV; ++v) UnpackBlock<F>(sets[v], b, &local[v]);
    }
    __m512i isum[MR][NV];
    for (int i = 0; i < MR; ++i) {
      __m512i init = _mm512_setzero_si512();
      if constexpr (kUnsignedOffset<F> != 0)
        init = _mm512_set1_epi32(-kUnsignedOffset<F> * a[i][b].sum);
      for (int v = 0; v < NV; ++v) isum[i][v] = init;
    }
    for (int q = 0; q < kQK / 4; ++q) {
      for (int v = 0; v < NV; ++v) {
        const __m512i wq = _mm512_load_si512(w[v].q[q]);
        for (int i = 0; i < MR; ++i) {
          int32_t quads;
          std::memcpy(&quads, a[i][b].qs + 4 * q, sizeof(quads));
          isum[i][v] = _mm512_dpbusd_epi32(isum[i][v], wq, _mm512_set1_epi32(quads));
        }
      }
    }
    for (int v = 0; v < NV; ++v) {
      const __m512 ws = _mm512_load_ps(w[v].scale);
      for (int i = 0; i < MR; ++i) {
        const __m512 scale = _mm512_mul_ps(ws, _mm512_set1_ps(a[i][b].d));
        acc[i][v] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[i][v]), scale, acc[i][v]);
        if constexpr (F::kMin >= 0) {
          acc[i][v] =
              _mm512_fmadd_ps(_mm512_load_ps(w[v].min), _mm512_set1_ps(sums[i][b]), acc[i][v]);
        }
      }
    }
  }
  avx512_tile::StoreTile<MR, NV>(g, i0, j0, t.rows, acc);
}

template <typename F, int MR>
PAGODA_TARGET_AVX512 void TileRowsAvx512(const QuantizedGemmArgs& g, int64_t i0, int64_t j0,
                                         const WeightTile& t, int nv) {
  switch (nv) {
    case 4:
      return TileAvx512<F, MR, 4>(g, i0, j0, t);
    case 3:
      return TileAvx512<F, MR, 3>(g, i0, j0, t);
    case 2:
      return TileAvx512<F, MR, 2>(g, i0, j0, t);
    default:
      return TileAvx512<F, MR, 1>(g, i0, j0, t);
  }
}

template <typename F>
PAGODA_TARGET_AVX512 void RunTile(const QuantizedGemmArgs& g, int64_t i0, int mr, int64_t j0,
                                  const WeightTile& t, int nv) {
  switch (mr) {
    case 4:
      return TileRowsAvx512<F, 4>(g, i0, j0, t, std::min(nv, 2));
    case 3:
      return TileRowsAvx512<F, 3>(g, i0, j0, t, std::min(nv, 2));
    case 2:
      return TileRowsAvx512<F, 2>(g, i0, j0, t, nv);
    default:
      return TileRowsAvx512<F, 1>(g, i0, j0, t, nv);
  }
}

constexpr int kMaxTileRows = 4;  // activation rows per register tile

template <typename F>
PAGODA_TARGET_AVX512 void GemmAvx512(const QuantizedGemmArgs& g, int64_t j_begin, int64_t j_end) {
  if (g.packed != nullptr && j_begin % kPackedGroupRows == 0) {
    // Weights packed at load (packed_gemm.h): the same arithmetic, nothing to transpose.
    if (const QuantizedGemmFn packed = PackedGemmAvx512For(F::kDType)) {
      return packed(g, j_begin, j_end);
    }
  }
  if (g.m <= kMaxTileRows) {
    // Few rows (decode, verification): each block is unpacked as it is used, straight into
    // registers; wider tiles for 1 or 2 rows keep 4 independent vpdpbusd chains.
    const int mr = static_cast<int>(g.m);
    const int64_t tile_rows = (mr <= 2 ? 4 : 2) * kLanes;
    for (int64_t j0 = j_begin; j0 < j_end; j0 += tile_rows) {
      const int64_t rows = std::min(tile_rows, j_end - j0);
      const int64_t next_rows = std::clamp<int64_t>(j_end - j0 - tile_rows, 0, tile_rows);
      const WeightTile t{.w = g.w + j0 * g.row_bytes,
                         .rows = rows,
                         .unpacked = nullptr,
                         .next = g.w + (j0 + rows) * g.row_bytes,
                         .next_bytes = next_rows * g.row_bytes};
      RunTile<F>(g, 0, mr, j0, t, static_cast<int>((rows + kLanes - 1) / kLanes));
    }
    return;
  }
  // Many rows: each tile of 32 weight rows is unpacked once (into L1/L2) for a block of
  // activation rows that stays in L2 (about 128 KiB of Q8 blocks).
  constexpr int64_t kVectors = 2;
  thread_local std::vector<BlockVector> unpacked;
  unpacked.resize(static_cast<size_t>(g.num_blocks * kVectors));
  const int64_t row_bytes_q8 = Q8RowStride(g.num_blocks) * static_cast<int64_t>(sizeof(Q8Block));
  const int64_t block_rows =
      std::max<int64_t>(kMaxTileRows, (128 << 10) / row_bytes_q8 / kMaxTileRows * kMaxTileRows);
  for (int64_t i_begin = 0; i_begin < g.m; i_begin += block_rows) {
    const int64_t i_end = std::min(g.m, i_begin + block_rows);
    for (int64_t j0 = j_begin; j0 < j_end; j0 += kVectors * kLanes) {
      const int64_t rows = std::min(kVectors * kLanes, j_end - j0);
      const int nv = static_cast<int>((rows + kLanes - 1) / kLanes);
      const int64_t next_rows =
          std::clamp<int64_t>(j_end - j0 - kVectors * kLanes, 0, kVectors * kLanes);
      UnpackTile<F>(g, g.w + j0 * g.row_bytes, rows, nv, unpacked.data(),
                    g.w + (j0 + rows) * g.row_bytes, next_rows * g.row_bytes);
      const WeightTile t{.w = g.w + j0 * g.row_bytes,
                         .rows = rows,
                         .unpacked = unpacked.data(),
                         .block_stride = nv};
      for (int64_t i0 = i_begin; i0 < i_end; i0 += kMaxTileRows) {
        RunTile<F>(g, i0, static_cast<int>(std::min<int64_t>(kMaxTileRows, i_end - i0)), j0, t, nv);
      }
    }
  }
}

#endif  // PAGODA_QDOT_X86

// Row by row with one dot function: batch-invariant because every element is one call.
template <QuantizedDotFn Dot>
void GemmByRows(const QuantizedGemmArgs& g, int64_t j_begin, int64_t j_end) {
  const int64_t a_stride = Q8RowStride(g.num_blocks);
  for (int64_t j = j_begin; j < j_end; ++j) {
    const uint8_t* row = g.w + j * g.row_bytes;
    for (int64_t i = 0; i < g.m; ++i) {
      StoreResult(g, i, j, Dot(row, g.a + i * a_stride, g.num_blocks));
    }
  }
}

template <typename F>
QuantizedDotFn Pick(CpuIsa isa) {
#if PAGODA_QDOT_X86
  if (isa == CpuIsa::kAvx512) return DotAvx512<F>;
  if (isa == CpuIsa::kAvx2) return DotAvx2<F>;
#endif
  return isa == CpuIsa::kScalar ? DotScalar<F> : nullptr;
}

template <typename F>
QuantizedGemmFn PickGemm(CpuIsa isa) {
#if PAGODA_QDOT_X86
  if (isa == CpuIsa::kAvx512) return GemmAvx512<F>;
  if (isa == CpuIsa::kAvx2) return GemmByRows<DotAvx2<F>>;
#endif
  return isa == CpuIsa::kScalar ? GemmByRows<DotScalar<F>> : nullptr;
}

}  // namespace

QuantizedDotFn QuantizedDotFor(DType dtype, CpuIsa isa) {
  switch (dtype) {
    case DType::kQ8_0:
      return Pick<FormatQ8_0>(isa);
    case DType::kQ4_0:
      return Pick<FormatQ4_0>(isa);
    case DType::kQ4_1:
      return Pick<FormatQ4_1>(isa);
    case DType::kQ5_0:
      return Pick<FormatQ5_0>(isa);
    case DType::kQ5_1:
      return Pick<FormatQ5_1>(isa);
    default:
      return KQuantDotFor(dtype, isa);
  }
}

QuantizedGemmFn QuantizedGemmFor(DType dtype, CpuIsa isa) {
  switch (dtype) {
    case DType::kQ8_0:
      return PickGemm<FormatQ8_0>(isa);
    case DType::kQ4_0:
      return PickGemm<FormatQ4_0>(isa);
    case DType::kQ4_1:
      return PickGemm<FormatQ4_1>(isa);
    case DType::kQ5_0:
      return PickGemm<FormatQ5_0>(isa);
    case DType::kQ5_1:
      return PickGemm<FormatQ5_1>(isa);
    default:
      return KQuantGemmFor(dtype, isa);
  }
}

}  // namespace pagoda::kernels::internal
