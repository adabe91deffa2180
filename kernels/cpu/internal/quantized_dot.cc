#include "kernels/cpu/internal/quantized_dot.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/internal/half.h"
#include "kernels/cpu/internal/kquant_dot.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define PAGODA_QDOT_X86 1
#include <immintrin.h>
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
  [[maybe_unused]] static constexpr int kBytes = 34, kQs = 2, kQh = -1, kMin = -1, kOffset = 0;
  static constexpr bool kSigned = true;  // int8 quants; the others are unsigned 4 or 5 bits
};
struct FormatQ4_0 {
  [[maybe_unused]] static constexpr int kBytes = 18, kQs = 2, kQh = -1, kMin = -1, kOffset = 8;
  static constexpr bool kSigned = false;
};
struct FormatQ4_1 {
  [[maybe_unused]] static constexpr int kBytes = 20, kQs = 4, kQh = -1, kMin = 2, kOffset = 0;
  static constexpr bool kSigned = false;
};
struct FormatQ5_0 {
  [[maybe_unused]] static constexpr int kBytes = 22, kQs = 6, kQh = 2, kMin = -1, kOffset = 16;
  static constexpr bool kSigned = false;
};
struct FormatQ5_1 {
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

// The batch-invariant GEMM (QuantizedGemmFor). Every activation quant is multiplied by an
// unsigned weight byte: Q8_0's int8 quants move to q + 128 (xor 0x80), and the formats with an
// offset (Q8_0 as moved: 128, Q4_0: 8, Q5_0: 16) start each block's int32 sum at
// -offset * sum(a), which keeps the integer sum exact. The formats with a min (Q4_1, Q5_1) add
// sum_b m_b * d_b * sum_b(a) as a separate dot of the rows' mins with the scaled sums.
template <typename F>
constexpr int32_t kUnsignedOffset = F::kSigned ? 128 : F::kOffset;

// The 32 quants of a block as unsigned bytes (Q8_0's moved by +128).
template <typename F>
PAGODA_TARGET_AVX512 inline __m256i UnsignedQuants(const uint8_t* block) {
  const __m256i q = QuantsAvx2<F>(block);
  if constexpr (F::kSigned) return _mm256_xor_si256(q, _mm256_set1_epi8(static_cast<char>(0x80)));
  return q;
}

// [lo x 8, hi x 8].
PAGODA_TARGET_AVX512 inline __m512 HalvesOf(float lo, float hi) {
  return _mm512_castpd_ps(
      _mm512_insertf64x4(_mm512_zextpd256_pd512(_mm256_castps_pd(_mm256_set1_ps(lo))),
                         _mm256_castps_pd(_mm256_set1_ps(hi)), 1));
}

PAGODA_TARGET_AVX512 inline float HorizontalSum512(__m512 v) {
  // Halves added through memory: GCC 12's _mm512_reduce_add_ps trips -Wuninitialized.
  alignas(64) float halves[16];
  _mm512_store_ps(halves, v);
  return HorizontalSum(_mm256_add_ps(_mm256_load_ps(halves), _mm256_load_ps(halves + 8)));
}

// A tile's weight rows unpacked once for all the activation rows that pass over them: per row
// and pair of blocks b, b + 1, the 64 unsigned quants (wq), the scales as [dw_b x 8, dw_b+1 x 8]
// (ws; an odd last block pairs with zeros), and the block mins as floats (formats with a min).
struct alignas(64) Vector64 {
  uint8_t bytes[64];
};
struct WeightTile {
  const Vector64* wq;  // [rows, pairs]: 64 uint8
  const Vector64* ws;  // [rows, pairs]: 16 float
  const float* mins;   // [rows, ScaledSumsStride]
  int64_t pairs;
};

template <typename F>
PAGODA_TARGET_AVX512 void UnpackWeightRow(const uint8_t* row, int64_t num_blocks, Vector64* wq,
                                          Vector64* ws, float* mins) {
  for (int64_t b = 0; b < num_blocks; b += 2) {
    const uint8_t* b0 = row + b * F::kBytes;
    if (b + 1 < num_blocks) {
      _mm512_store_si512(wq + b / 2,
                         Concat(UnsignedQuants<F>(b0), UnsignedQuants<F>(b0 + F::kBytes)));
      _mm512_store_ps(ws + b / 2, HalvesOf(HalfAt(b0), HalfAt(b0 + F::kBytes)));
    } else {
      _mm512_store_si512(wq + b / 2, _mm512_zextsi256_si512(UnsignedQuants<F>(b0)));
      _mm512_store_ps(ws + b / 2, HalvesOf(HalfAt(b0), 0.0f));
    }
  }
  if constexpr (F::kMin >= 0) {
    for (int64_t b = 0; b < num_blocks; ++b) mins[b] = HalfAt(row + b * F::kBytes + F::kMin);
  }
}

// One tile: weight rows j0 .. j0 + NR - 1 (unpacked in w) against activation rows
// i0 .. i0 + MR - 1. Each element has its own accumulator, and the operations on it do not depend
// on MR, NR or the neighbours.
template <typename F, int MR, int NR>
PAGODA_TARGET_AVX512 void TileAvx512(const QuantizedGemmArgs& g, int64_t i0, int64_t j0,
                                     const WeightTile& w) {
  const int64_t num_blocks = g.num_blocks;
  const int64_t a_stride = Q8RowStride(num_blocks);
  const Q8Block* a[MR];
  for (int i = 0; i < MR; ++i) a[i] = g.a + (i0 + i) * a_stride;
  __m512 acc[MR][NR];
  for (int i = 0; i < MR; ++i) {
    for (int r = 0; r < NR; ++r) acc[i][r] = _mm512_setzero_ps();
  }
  // Two blocks per step, lanes 0..7 for the first and 8..15 for the second; an odd last block
  // pairs with the activations' zero padding block (and zero weights).
  for (int64_t pair = 0; pair < w.pairs; ++pair) {
    const int64_t b = 2 * pair;
    for (int i = 0; i < MR; ++i) {
      const Q8Block& a0 = a[i][b];
      const Q8Block& a1 = a[i][b + 1];
      const __m512i aq = Concat(LoadActivations(a0), LoadActivations(a1));
      const __m512 as = HalvesOf(a0.d, a1.d);
      __m512i init = _mm512_setzero_si512();
      if constexpr (kUnsignedOffset<F> != 0) {
        init = _mm512_mask_set1_epi32(_mm512_maskz_set1_epi32(0x0001, -kUnsignedOffset<F> * a0.sum),
                                      0x0100, -kUnsignedOffset<F> * a1.sum);
      }
      for (int r = 0; r < NR; ++r) {
        const __m512i sums =
            _mm512_dpbusd_epi32(init, _mm512_load_si512(w.wq + r * w.pairs + pair), aq);
        const __m512 scale = _mm512_mul_ps(_mm512_load_ps(w.ws + r * w.pairs + pair), as);
        acc[i][r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), scale, acc[i][r]);
      }
    }
  }
  const int64_t s_stride = ScaledSumsStride(num_blocks);
  for (int i = 0; i < MR; ++i) {
    for (int r = 0; r < NR; ++r) {
      float value = HorizontalSum512(acc[i][r]);
      if constexpr (F::kMin >= 0) {
        const float* m = w.mins + r * s_stride;
        const float* s = g.scaled_sums + (i0 + i) * s_stride;
        __m512 e = _mm512_setzero_ps();
        for (int64_t b = 0; b < s_stride; b += 16) {
          e = _mm512_fmadd_ps(_mm512_loadu_ps(m + b), _mm512_loadu_ps(s + b), e);
        }
        value += HorizontalSum512(e);
      }
      StoreResult(g, i0 + i, j0 + r, value);
    }
  }
}

template <typename F, int MR>
PAGODA_TARGET_AVX512 void TileRowsAvx512(const QuantizedGemmArgs& g, int64_t i0, int64_t j0, int nr,
                                         const WeightTile& w) {
  switch (nr) {
    case 4:
      return TileAvx512<F, MR, 4>(g, i0, j0, w);
    case 3:
      return TileAvx512<F, MR, 3>(g, i0, j0, w);
    case 2:
      return TileAvx512<F, MR, 2>(g, i0, j0, w);
    default:
      return TileAvx512<F, MR, 1>(g, i0, j0, w);
  }
}

constexpr int64_t kTileRows = 4;  // weight rows and activation rows per register tile

template <typename F>
PAGODA_TARGET_AVX512 void GemmAvx512(const QuantizedGemmArgs& g, int64_t j_begin, int64_t j_end) {
  const int64_t s_stride = ScaledSumsStride(g.num_blocks);
  const int64_t pairs = Q8RowStride(g.num_blocks) / 2;
  // This thread's unpacked weight tile, kept between calls (the mins' padding stays zero).
  thread_local std::vector<Vector64> wq;
  thread_local std::vector<Vector64> ws;
  thread_local std::vector<float> mins;
  wq.resize(static_cast<size_t>(kTileRows * pairs));
  ws.resize(static_cast<size_t>(kTileRows * pairs));
  if constexpr (F::kMin >= 0) mins.assign(static_cast<size_t>(kTileRows * s_stride), 0.0f);
  const WeightTile tile{wq.data(), ws.data(), mins.data(), pairs};
  // Activation rows in blocks that stay in L2 (about 128 KiB of Q8 blocks) while every weight
  // tile of this thread's range passes over them; the weight tile itself stays in L1.
  const int64_t row_bytes_q8 = Q8RowStride(g.num_blocks) * static_cast<int64_t>(sizeof(Q8Block));
  const int64_t block_rows =
      std::max<int64_t>(kTileRows, (128 << 10) / row_bytes_q8 / kTileRows * kTileRows);
  for (int64_t i_begin = 0; i_begin < g.m; i_begin += block_rows) {
    const int64_t i_end = std::min(g.m, i_begin + block_rows);
    for (int64_t j0 = j_begin; j0 < j_end; j0 += kTileRows) {
      const int nr = static_cast<int>(std::min(kTileRows, j_end - j0));
      for (int r = 0; r < nr; ++r) {
        // Formats without a min leave `mins` empty: no offset on its null data().
        float* row_mins = F::kMin >= 0 ? mins.data() + r * s_stride : nullptr;
        UnpackWeightRow<F>(g.w + (j0 + r) * g.row_bytes, g.num_blocks, wq.data() + r * pairs,
                           ws.data() + r * pairs, row_mins);
      }
      for (int64_t i0 = i_begin; i0 < i_end; i0 += kTileRows) {
        switch (std::min(kTileRows, i_end - i0)) {
          case 4:
            TileRowsAvx512<F, 4>(g, i0, j0, nr, tile);
            break;
          case 3:
            TileRowsAvx512<F, 3>(g, i0, j0, nr, tile);
            break;
          case 2:
            TileRowsAvx512<F, 2>(g, i0, j0, nr, tile);
            break;
          default:
            TileRowsAvx512<F, 1>(g, i0, j0, nr, tile);
            break;
        }
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
