#include "kernels/cpu/internal/q8_activations.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "kernels/cpu/internal/vec_math.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define PAGODA_Q8_AVX512 1
#endif

namespace pagoda::kernels::internal {
namespace {

// Written so that GCC and clang vectorize the 32-element loops without pragmas or -ffast-math:
// integer max, a rounding trick instead of nearbyint (a libm call in the baseline clone), selects.

// max |x| over a block as the largest magnitude bit pattern: for non-negative floats the integer
// order is the float order, and NaN sorts above Inf.
inline float BlockAbsMax(const float* x) {
  uint32_t bits = 0;
  for (int l = 0; l < kQ8BlockElements; ++l) {
    bits = std::max(bits, std::bit_cast<uint32_t>(x[l]) & 0x7fffffffu);
  }
  return std::bit_cast<float>(bits);
}

// RoundToQuant's 1.5 * 2^23: adding and removing it leaves no fraction bits (exact for values
// below 2^22 in magnitude), rounding to the nearest integer, ties to even.
constexpr float kRound = 12582912.0f;

// x * m rounded to the nearest integer, ties to even, clamped to [-127, 127]; NaN gives 0. The
// product is fused into the rounding's addition, written out (std::fma) so that every compiler
// and clone gives the same quant: GCC fused it on its own in its x86-64-v3/v4 clones and not in
// the baseline one or under clang, and the two differ where the product just below a half rounds
// up to it as a float (one element in a few million of SmolLM2's activations).
inline float RoundToQuant(float x, float m) {
  const float r = std::min(std::max(std::fma(x, m, kRound) - kRound, -127.0f), 127.0f);
  return r == r ? r : 0.0f;
}

// The block's scale d (NaN where an input is Inf or NaN) and the multiplier 1 / d (0 where
// every input is 0 or one is not finite, so that those quants are 0).
struct BlockScale {
  float d;
  float inverse;
};
// From the block's max |x| (BlockAbsMax's bit-pattern max: NaN where an input is NaN).
inline BlockScale ScaleOfMax(float amax) {
  const bool finite = amax <= std::numeric_limits<float>::max();
  const float d = amax / 127.0f;
  return {finite ? d : std::numeric_limits<float>::quiet_NaN(),
          finite && d != 0.0f ? 1.0f / d : 0.0f};
}
inline BlockScale ScaleOf(const float* x) { return ScaleOfMax(BlockAbsMax(x)); }

PAGODA_KERNEL_CLONES void PortableQuantizeRowQ8(const float* __restrict x, Q8Block* __restrict out,
                                                int64_t num_blocks, float* __restrict scaled_sums) {
  for (int64_t b = 0; b < num_blocks; ++b, x += kQ8BlockElements) {
    const BlockScale scale = ScaleOf(x);
    // Three passes over the block, each of which vectorizes (one fused loop does not).
    int32_t q[kQ8BlockElements];
    for (int l = 0; l < kQ8BlockElements; ++l) {
      q[l] = static_cast<int32_t>(RoundToQuant(x[l], scale.inverse));
    }
    int8_t* qs = out[b].qs;
    for (int l = 0; l < kQ8BlockElements; ++l) qs[l] = static_cast<int8_t>(q[l]);
    int32_t sum = 0;
    for (int l = 0; l < kQ8BlockElements; ++l) sum += q[l];
    out[b].d = scale.d;
    out[b].sum = sum;
    // Here, while the sum is in a register: a separate loop over the blocks' fields vectorizes
    // into a gather through the stack that stalls on every four blocks.
    if (scaled_sums != nullptr) scaled_sums[b] = scale.d * static_cast<float>(sum);
  }
}

#ifdef PAGODA_Q8_AVX512
// The same, block by block in two vectors: ScaleOf's max of the magnitudes' bit patterns and its
// scalar scale, then RoundToQuant's fused product and rounding, clamp and narrowing. A block with
// a non-finite input has multiplier 0 and every quant 0, as there (NaN -> 0).
__attribute__((target("avx2,fma,avx512f,avx512bw,avx512vl"))) void Avx512QuantizeRowQ8(
    const float* __restrict x, Q8Block* __restrict out, int64_t num_blocks,
    float* __restrict scaled_sums) {
  static_assert(kQ8BlockElements == 32);
  constexpr __mmask16 kAll = 0xFFFF;  // GCC 12: the masked forms (as in attention_rows.cc)
  const __m512 round = _mm512_set1_ps(kRound);
  const __m512i magnitude = _mm512_set1_epi32(0x7fffffff);
  const __m512 lo = _mm512_set1_ps(-127.0f);
  const __m512 hi = _mm512_set1_ps(127.0f);
  for (int64_t b = 0; b < num_blocks; ++b, x += kQ8BlockElements) {
    const __m512 x0 = _mm512_loadu_ps(x);
    const __m512 x1 = _mm512_loadu_ps(x + 16);
    const __m512i bits = _mm512_max_epu32(_mm512_and_si512(_mm512_castps_si512(x0), magnitude),
                                          _mm512_and_si512(_mm512_castps_si512(x1), magnitude));
    const BlockScale scale = ScaleOfMax(std::bit_cast<float>(_mm512_reduce_max_epu32(bits)));
    const float inverse = scale.inverse;
    if (!(inverse <= std::numeric_limits<float>::max())) {
      // d subnormal, 1 / d infinite: a zero input's quotient is NaN (0 there, -127 from the
      // clamp here). Rare enough for the portable loop.
      PortableQuantizeRowQ8(x, out + b, 1, scaled_sums == nullptr ? nullptr : scaled_sums + b);
      continue;
    }
    out[b].d = scale.d;
    int32_t sum = 0;
    if (inverse == 0.0f) {
      std::memset(out[b].qs, 0, sizeof(out[b].qs));
    } else {
      const __m512 m = _mm512_set1_ps(inverse);
      const __m512 r0 =
          _mm512_min_ps(_mm512_max_ps(_mm512_sub_ps(_mm512_fmadd_ps(x0, m, round), round), lo), hi);
      const __m512 r1 =
          _mm512_min_ps(_mm512_max_ps(_mm512_sub_ps(_mm512_fmadd_ps(x1, m, round), round), lo), hi);
      const __m512i q0 = _mm512_maskz_cvtps_epi32(kAll, r0);
      const __m512i q1 = _mm512_maskz_cvtps_epi32(kAll, r1);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out[b].qs), _mm512_maskz_cvtepi32_epi8(kAll, q0));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out[b].qs + 16),
                       _mm512_maskz_cvtepi32_epi8(kAll, q1));
      sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
    }
    out[b].sum = sum;
    if (scaled_sums != nullptr) scaled_sums[b] = out[b].d * static_cast<float>(sum);
  }
}
#endif  // PAGODA_Q8_AVX512

}  // namespace

void QuantizeRowQ8(const float* x, Q8Block* out, int64_t num_blocks, float* scaled_sums,
                   CpuIsa isa) {
#ifdef PAGODA_Q8_AVX512
  if (isa == CpuIsa::kAvx512) return Avx512QuantizeRowQ8(x, out, num_blocks, scaled_sums);
#endif
  (void)isa;
  PortableQuantizeRowQ8(x, out, num_blocks, scaled_sums);
}

}  // namespace pagoda::kernels::internal
