#include "kernels/cpu/internal/quantized_dot.h"

#include <cstring>

#include "kernels/cpu/internal/half.h"

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

#endif  // PAGODA_QDOT_X86

template <typename F>
QuantizedDotFn Pick(CpuIsa isa) {
#if PAGODA_QDOT_X86
  if (isa == CpuIsa::kAvx512) return DotAvx512<F>;
  if (isa == CpuIsa::kAvx2) return DotAvx2<F>;
#endif
  return isa == CpuIsa::kScalar ? DotScalar<F> : nullptr;
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
      return nullptr;
  }
}

}  // namespace pagoda::kernels::internal
