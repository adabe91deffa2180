#include "kernels/cpu/internal/attention_rows.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/cpu/internal/cpu_isa.h"
#include "kernels/cpu/internal/vec_math.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define PAGODA_HAVE_AVX2_PATH 1
#endif

namespace pagoda::kernels::internal {
namespace {

void PortableScores(const float* q, const float* const* k, int64_t n, int64_t dim, float* s) {
  for (int64_t c = 0; c < n; ++c) {
    const float* __restrict kc = k[c];
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t d = 0; d < dim; ++d) sum += q[d] * kc[d];
    s[c] = sum;
  }
}

void PortableAccumulate(const float* p, const float* const* v, int64_t n, int64_t dim, float* acc) {
  for (int64_t c = 0; c < n; ++c) {
    const float* __restrict vc = v[c];
    const float pc = p[c];
#pragma omp simd
    for (int64_t d = 0; d < dim; ++d) acc[d] += pc * vc[d];
  }
}

#ifdef PAGODA_HAVE_AVX2_PATH
#define PAGODA_AVX2 __attribute__((target("avx2,fma")))

PAGODA_AVX2 inline float HorizontalSum(__m256 x) {
  __m128 v = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
  v = _mm_add_ps(v, _mm_movehl_ps(v, v));
  v = _mm_add_ss(v, _mm_movehdup_ps(v));
  return _mm_cvtss_f32(v);
}

// Eight K rows per pass: eight independent FMA chains share each load of q, and one transposing
// hadd tree reduces all eight sums (instead of eight separate horizontal reductions).
PAGODA_AVX2 void Avx2Scores(const float* q, const float* const* k, int64_t n, int64_t dim,
                            float* s) {
  const int64_t vec_dim = dim & ~int64_t{7};
  int64_t c = 0;
  for (; c + 8 <= n; c += 8) {
    const float* k0 = k[c];
    const float* k1 = k[c + 1];
    const float* k2 = k[c + 2];
    const float* k3 = k[c + 3];
    const float* k4 = k[c + 4];
    const float* k5 = k[c + 5];
    const float* k6 = k[c + 6];
    const float* k7 = k[c + 7];
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (int64_t d = 0; d < vec_dim; d += 8) {
      const __m256 x = _mm256_loadu_ps(q + d);
      a0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(k0 + d), a0);
      a1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(k1 + d), a1);
      a2 = _mm256_fmadd_ps(x, _mm256_loadu_ps(k2 + d), a2);
      a3 = _mm256_fmadd_ps(x, _mm256_loadu_ps(k3 + d), a3);
      a4 = _mm256_fmadd_ps(x, _mm256_loadu_ps(k4 + d), a4);
      a5 = _mm256_fmadd_ps(x, _mm256_loadu_ps(k5 + d), a5);
      a6 = _mm256_fmadd_ps(x, _mm256_loadu_ps(k6 + d), a6);
      a7 = _mm256_fmadd_ps(x, _mm256_loadu_ps(k7 + d), a7);
    }
    // hadd(a, b) = [a01 a23 b01 b23 | a45 a67 b45 b67]; two levels give per-row sums of each
    // 128-bit half, and adding the halves finishes all eight.
    const __m256 t0 = _mm256_hadd_ps(a0, a1);
    const __m256 t1 = _mm256_hadd_ps(a2, a3);
    const __m256 t2 = _mm256_hadd_ps(a4, a5);
    const __m256 t3 = _mm256_hadd_ps(a6, a7);
    const __m256 u0 = _mm256_hadd_ps(t0, t1);
    const __m256 u1 = _mm256_hadd_ps(t2, t3);
    __m256 sum =
        _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
    _mm256_storeu_ps(s + c, sum);
    for (int64_t d = vec_dim; d < dim; ++d) {
      for (int64_t i = 0; i < 8; ++i) s[c + i] += q[d] * k[c + i][d];
    }
  }
  for (; c < n; ++c) {
    const float* kc = k[c];
    __m256 a = _mm256_setzero_ps();
    for (int64_t d = 0; d < vec_dim; d += 8) {
      a = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), _mm256_loadu_ps(kc + d), a);
    }
    float sum = HorizontalSum(a);
    for (int64_t d = vec_dim; d < dim; ++d) sum += q[d] * kc[d];
    s[c] = sum;
  }
}

// acc stays in registers 64 floats at a time (eight independent FMA chains) while the V rows of
// the chunk stream past.
PAGODA_AVX2 void Avx2Accumulate(const float* p, const float* const* v, int64_t n, int64_t dim,
                                float* acc) {
  int64_t d = 0;
  for (; d + 64 <= dim; d += 64) {
    __m256 x0 = _mm256_loadu_ps(acc + d), x1 = _mm256_loadu_ps(acc + d + 8),
           x2 = _mm256_loadu_ps(acc + d + 16), x3 = _mm256_loadu_ps(acc + d + 24),
           x4 = _mm256_loadu_ps(acc + d + 32), x5 = _mm256_loadu_ps(acc + d + 40),
           x6 = _mm256_loadu_ps(acc + d + 48), x7 = _mm256_loadu_ps(acc + d + 56);
    for (int64_t c = 0; c < n; ++c) {
      const __m256 w = _mm256_broadcast_ss(p + c);
      const float* vc = v[c] + d;
      x0 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vc), x0);
      x1 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vc + 8), x1);
      x2 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vc + 16), x2);
      x3 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vc + 24), x3);
      x4 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vc + 32), x4);
      x5 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vc + 40), x5);
      x6 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vc + 48), x6);
      x7 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vc + 56), x7);
    }
    _mm256_storeu_ps(acc + d, x0);
    _mm256_storeu_ps(acc + d + 8, x1);
    _mm256_storeu_ps(acc + d + 16, x2);
    _mm256_storeu_ps(acc + d + 24, x3);
    _mm256_storeu_ps(acc + d + 32, x4);
    _mm256_storeu_ps(acc + d + 40, x5);
    _mm256_storeu_ps(acc + d + 48, x6);
    _mm256_storeu_ps(acc + d + 56, x7);
  }
  for (; d + 16 <= dim; d += 16) {
    __m256 x0 = _mm256_loadu_ps(acc + d), x1 = _mm256_loadu_ps(acc + d + 8);
    for (int64_t c = 0; c < n; ++c) {
      const __m256 w = _mm256_broadcast_ss(p + c);
      x0 = _mm256_fmadd_ps(w, _mm256_loadu_ps(v[c] + d), x0);
      x1 = _mm256_fmadd_ps(w, _mm256_loadu_ps(v[c] + d + 8), x1);
    }
    _mm256_storeu_ps(acc + d, x0);
    _mm256_storeu_ps(acc + d + 8, x1);
  }
  for (; d + 8 <= dim; d += 8) {
    __m256 x0 = _mm256_loadu_ps(acc + d);
    for (int64_t c = 0; c < n; ++c) {
      x0 = _mm256_fmadd_ps(_mm256_broadcast_ss(p + c), _mm256_loadu_ps(v[c] + d), x0);
    }
    _mm256_storeu_ps(acc + d, x0);
  }
  for (; d < dim; ++d) {
    float x = acc[d];
    for (int64_t c = 0; c < n; ++c) x += p[c] * v[c][d];
    acc[d] = x;
  }
}

// The group form on AVX-512: 16 floats per vector, bfloat16 rows widened in registers (a shift),
// up to 4 query rows per pass.
#define PAGODA_AVX512 __attribute__((target("avx2,fma,avx512f,avx512bw,avx512vl,avx512dq")))

constexpr int kMaxGroupRows = 4;  // query rows per register pass
// The masked forms with all lanes: GCC 12 reports the unmasked ones' undefined pass-through
// operands as -Wuninitialized once inlined (as in quantized_dot.cc).
constexpr __mmask16 kAll = 0xFFFF;

PAGODA_AVX512 inline __mmask16 TailMask(int64_t remaining) {
  return remaining >= 16  ? static_cast<__mmask16>(0xFFFF)
         : remaining <= 0 ? static_cast<__mmask16>(0)
                          : static_cast<__mmask16>((1u << remaining) - 1u);
}

// Elements d .. d + 15 of a cached row (lanes outside `mask` zero, their memory not read).
template <bool kBf16>
PAGODA_AVX512 inline __m512 LoadCached(const void* row, int64_t d, __mmask16 mask) {
  if constexpr (kBf16) {
    const __m256i half = _mm256_maskz_loadu_epi16(mask, static_cast<const uint16_t*>(row) + d);
    return _mm512_castsi512_ps(
        _mm512_maskz_slli_epi32(kAll, _mm512_maskz_cvtepu16_epi32(kAll, half), 16));
  } else {
    return _mm512_maskz_loadu_ps(mask, static_cast<const float*>(row) + d);
  }
}

PAGODA_AVX512 inline __m512 AddHalves(__m512 a, __m512 b) {
  // 128-bit lanes [a.0 + a.2, a.1 + a.3, b.0 + b.2, b.1 + b.3].
  return _mm512_add_ps(_mm512_maskz_shuffle_f32x4(kAll, a, b, 0x44),
                       _mm512_maskz_shuffle_f32x4(kAll, a, b, 0xEE));
}

// The lane sums of a0 .. a3, each by the same fixed tree (halves, quarters, then within 128
// bits), as the four floats of the result.
PAGODA_AVX512 inline __m128 SumLanes4(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
  const __m512 x01 = AddHalves(a0, a1);
  const __m512 x23 = AddHalves(a2, a3);
  // 128-bit lane i: the four partial sums of a_i.
  const __m512 y = _mm512_add_ps(_mm512_maskz_shuffle_f32x4(kAll, x01, x23, 0x88),
                                 _mm512_maskz_shuffle_f32x4(kAll, x01, x23, 0xDD));
  const __m512 z = _mm512_add_ps(y, _mm512_maskz_permute_ps(kAll, y, 0x4E));
  const __m512 w = _mm512_add_ps(z, _mm512_maskz_permute_ps(kAll, z, 0xB1));
  const __m512 picked = _mm512_maskz_permutexvar_ps(
      kAll, _mm512_setr_epi32(0, 4, 8, 12, 0, 4, 8, 12, 0, 4, 8, 12, 0, 4, 8, 12), w);
  return _mm512_castps512_ps128(picked);
}

// R query rows against 4 cached rows at a time; past n the last row repeats (its sums dropped),
// so every score goes through the same 4-wide code.
template <bool kBf16, int R>
PAGODA_AVX512 void GroupScoresAvx512(const float* q, const void* const* k, int64_t n, int64_t dim,
                                     float* s, int64_t s_stride) {
  for (int64_t c = 0; c < n; c += 4) {
    const void* rows[4];
    for (int j = 0; j < 4; ++j) rows[j] = k[std::min<int64_t>(c + j, n - 1)];
    __m512 acc[R][4];
    for (int r = 0; r < R; ++r) {
      for (int j = 0; j < 4; ++j) acc[r][j] = _mm512_setzero_ps();
    }
    for (int64_t d = 0; d < dim; d += 16) {
      const __mmask16 mask = TailMask(dim - d);
      __m512 kv[4];
      for (int j = 0; j < 4; ++j) kv[j] = LoadCached<kBf16>(rows[j], d, mask);
      for (int r = 0; r < R; ++r) {
        const __m512 qv = _mm512_maskz_loadu_ps(mask, q + r * dim + d);
        for (int j = 0; j < 4; ++j) acc[r][j] = _mm512_fmadd_ps(qv, kv[j], acc[r][j]);
      }
    }
    const int64_t valid = std::min<int64_t>(4, n - c);
    for (int r = 0; r < R; ++r) {
      const __m128 sums = SumLanes4(acc[r][0], acc[r][1], acc[r][2], acc[r][3]);
      if (valid == 4) {
        _mm_storeu_ps(s + r * s_stride + c, sums);
      } else {
        _mm_mask_storeu_ps(s + r * s_stride + c, static_cast<__mmask8>((1u << valid) - 1u), sums);
      }
    }
  }
}

// 16 consecutive elements of a transposed key run (a dimension's 16 positions) at `at`.
template <bool kBf16>
PAGODA_AVX512 inline __m512 LoadRun(const void* run, int64_t at) {
  return LoadCached<kBf16>(run, at, kAll);
}

// S2[e] of SumLanes4's tree for R rows, with positions in lanes: the chains of lanes e, e + 8,
// e + 4 and e + 12 of GroupScoresAvx512's accumulators (fused multiply-adds over d = l, l + 16,
// ... < dim in that order, from 0), side by side, then (P[e] + P[e+8]) + (P[e+4] + P[e+12]).
template <bool kBf16, int R>
PAGODA_AVX512 inline void LaneQuad(const float* q, int64_t dim, const void* run, int64_t d_stride,
                                   int64_t e, __m512 (&s2)[R]) {
  constexpr int64_t kLanes[4] = {0, 8, 4, 12};
  __m512 acc[4][R];
  for (int i = 0; i < 4; ++i) {
    for (int r = 0; r < R; ++r) acc[i][r] = _mm512_setzero_ps();
  }
  for (int64_t d0 = e; d0 < dim; d0 += 16) {
    for (int i = 0; i < 4; ++i) {
      const int64_t d = d0 + kLanes[i];
      if (d >= dim) continue;
      const __m512 key = LoadRun<kBf16>(run, d * d_stride);
      for (int r = 0; r < R; ++r) {
        // The key from a register, the query element as the instruction's broadcast operand
        // (GCC would fold the key's load into every multiply-add and broadcast apart).
        __asm__("vfmadd231ps %[x]%{1to16%}, %[k], %[a]"
                : [a] "+v"(acc[i][r])
                : [k] "v"(key), [x] "m"(q[r * dim + d]));
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    s2[r] = _mm512_add_ps(_mm512_add_ps(acc[0][r], acc[1][r]), _mm512_add_ps(acc[2][r], acc[3][r]));
  }
}

// R query rows against runs of 16 positions of transposed keys: SumLanes4's tree with the lanes'
// chains as whole vectors, (S2[0] + S2[2]) + (S2[1] + S2[3]) (LaneQuad), one score per lane.
template <bool kBf16, int R>
PAGODA_AVX512 void GroupScoresTransposedAvx512(const float* q, const void* const* k, int64_t runs,
                                               int64_t dim, int64_t d_stride, float* s,
                                               int64_t s_stride) {
  for (int64_t j = 0; j < runs; ++j) {
    __m512 z[2][R];
    for (int half = 0; half < 2; ++half) {
      __m512 lo[R], hi[R];
      LaneQuad<kBf16, R>(q, dim, k[j], d_stride, half, lo);      // S2[0], then S2[1]
      LaneQuad<kBf16, R>(q, dim, k[j], d_stride, half + 2, hi);  // S2[2], then S2[3]
      for (int r = 0; r < R; ++r) z[half][r] = _mm512_add_ps(lo[r], hi[r]);
    }
    for (int r = 0; r < R; ++r) {
      _mm512_storeu_ps(s + r * s_stride + j * kTransposedKeyRun, _mm512_add_ps(z[0][r], z[1][r]));
    }
  }
}

// R rows' accumulators, 64 dims at a time, in registers while the n V rows stream past.
template <bool kBf16, int R>
PAGODA_AVX512 void GroupAccumulateAvx512(const float* p, int64_t p_stride, const void* const* v,
                                         int64_t n, int64_t dim, float* acc) {
  for (int64_t d0 = 0; d0 < dim; d0 += 64) {
    __mmask16 mask[4];
    for (int j = 0; j < 4; ++j) mask[j] = TailMask(dim - d0 - 16 * j);
    __m512 a[R][4];
    for (int r = 0; r < R; ++r) {
      for (int j = 0; j < 4; ++j) {
        a[r][j] = _mm512_maskz_loadu_ps(mask[j], acc + r * dim + d0 + 16 * j);
      }
    }
    for (int64_t c = 0; c < n; ++c) {
      __m512 x[4];
      for (int j = 0; j < 4; ++j) x[j] = LoadCached<kBf16>(v[c], d0 + 16 * j, mask[j]);
      for (int r = 0; r < R; ++r) {
        const __m512 weight = _mm512_set1_ps(p[r * p_stride + c]);
        for (int j = 0; j < 4; ++j) a[r][j] = _mm512_fmadd_ps(weight, x[j], a[r][j]);
      }
    }
    for (int r = 0; r < R; ++r) {
      for (int j = 0; j < 4; ++j) {
        _mm512_mask_storeu_ps(acc + r * dim + d0 + 16 * j, mask[j], a[r][j]);
      }
    }
  }
}

// AttentionGroupOps::softmax: each row's kGroupSoftmaxPositions scores as two vectors, the lanes
// outside [first, valid) -inf, so that a row takes the same operations (the max, then a fixed tree
// for the sum) whatever its range and whatever rows share the call.
PAGODA_AVX512 void Avx512GroupSoftmax(float* s, int64_t s_stride, int64_t rows, int64_t first,
                                      int64_t valid, float softcap, int64_t dim, float* max,
                                      float* sum, float* acc) {
  static_assert(kGroupSoftmaxPositions == 32);
  const uint32_t upto = valid >= 32 ? ~0u : (1u << valid) - 1u;
  const uint32_t lanes = upto & ~((1u << first) - 1u);  // first < valid <= 32
  const auto lo = static_cast<__mmask16>(lanes & 0xFFFFu);
  const auto hi = static_cast<__mmask16>(lanes >> 16);
  const __m512 minus_inf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for (int64_t r = 0; r < rows; ++r) {
    float* row = s + r * s_stride;
    if (softcap > 0.0f) {
      const float inv_cap = 1.0f / softcap;
      for (int64_t c = first; c < valid; ++c) row[c] = softcap * std::tanh(row[c] * inv_cap);
    }
    const __m512 x0 = _mm512_mask_loadu_ps(minus_inf, lo, row);
    const __m512 x1 = _mm512_mask_loadu_ps(minus_inf, hi, row + 16);
    const float old_max = max[r];
    const float new_max = std::max(old_max, _mm512_reduce_max_ps(_mm512_max_ps(x0, x1)));
    const __m512 shift = _mm512_set1_ps(new_max);
    alignas(64) float w[32];
    _mm512_store_ps(w, _mm512_sub_ps(x0, shift));
    _mm512_store_ps(w + 16, _mm512_sub_ps(x1, shift));
#pragma omp simd
    for (int c = 0; c < 32; ++c) w[c] = FastExp<ExpUnderflow::kZero>(w[c]);
    // Whole loads, then the masks: a masked load of what was just stored waits for the stores to
    // reach the cache instead of taking their data from the store buffer.
    const __m512 e0 = _mm512_maskz_mov_ps(lo, _mm512_load_ps(w));
    const __m512 e1 = _mm512_maskz_mov_ps(hi, _mm512_load_ps(w + 16));
    _mm512_storeu_ps(row, e0);
    _mm512_storeu_ps(row + 16, e1);
    const float chunk_sum = _mm512_reduce_add_ps(_mm512_add_ps(e0, e1));
    if (new_max != old_max) {
      const float rescale = std::exp(old_max - new_max);  // 0 on the first chunk
      float* __restrict a = acc + r * dim;
#pragma omp simd
      for (int64_t d = 0; d < dim; ++d) a[d] *= rescale;
      sum[r] *= rescale;
      max[r] = new_max;
    }
    sum[r] += chunk_sum;
  }
}

template <bool kBf16>
PAGODA_AVX512 void GroupScoresRows(const float* q, int64_t rows, const void* const* k, int64_t n,
                                   int64_t dim, float* s, int64_t s_stride) {
  for (int64_t r0 = 0; r0 < rows; r0 += kMaxGroupRows) {
    const float* qr = q + r0 * dim;
    float* sr = s + r0 * s_stride;
    switch (std::min<int64_t>(kMaxGroupRows, rows - r0)) {
      case 4:
        GroupScoresAvx512<kBf16, 4>(qr, k, n, dim, sr, s_stride);
        break;
      case 3:
        GroupScoresAvx512<kBf16, 3>(qr, k, n, dim, sr, s_stride);
        break;
      case 2:
        GroupScoresAvx512<kBf16, 2>(qr, k, n, dim, sr, s_stride);
        break;
      default:
        GroupScoresAvx512<kBf16, 1>(qr, k, n, dim, sr, s_stride);
        break;
    }
  }
}

template <bool kBf16>
PAGODA_AVX512 void GroupScoresTransposedRows(const float* q, int64_t rows, const void* const* k,
                                             int64_t runs, int64_t dim, int64_t d_stride, float* s,
                                             int64_t s_stride) {
  for (int64_t r0 = 0; r0 < rows; r0 += kMaxGroupRows) {
    const float* qr = q + r0 * dim;
    float* sr = s + r0 * s_stride;
    switch (std::min<int64_t>(kMaxGroupRows, rows - r0)) {
      case 4:
        GroupScoresTransposedAvx512<kBf16, 4>(qr, k, runs, dim, d_stride, sr, s_stride);
        break;
      case 3:
        GroupScoresTransposedAvx512<kBf16, 3>(qr, k, runs, dim, d_stride, sr, s_stride);
        break;
      case 2:
        GroupScoresTransposedAvx512<kBf16, 2>(qr, k, runs, dim, d_stride, sr, s_stride);
        break;
      default:
        GroupScoresTransposedAvx512<kBf16, 1>(qr, k, runs, dim, d_stride, sr, s_stride);
        break;
    }
  }
}

template <bool kBf16>
PAGODA_AVX512 void GroupAccumulateRows(const float* p, int64_t p_stride, int64_t rows,
                                       const void* const* v, int64_t n, int64_t dim, float* acc) {
  for (int64_t r0 = 0; r0 < rows; r0 += kMaxGroupRows) {
    const float* pr = p + r0 * p_stride;
    float* ar = acc + r0 * dim;
    switch (std::min<int64_t>(kMaxGroupRows, rows - r0)) {
      case 4:
        GroupAccumulateAvx512<kBf16, 4>(pr, p_stride, v, n, dim, ar);
        break;
      case 3:
        GroupAccumulateAvx512<kBf16, 3>(pr, p_stride, v, n, dim, ar);
        break;
      case 2:
        GroupAccumulateAvx512<kBf16, 2>(pr, p_stride, v, n, dim, ar);
        break;
      default:
        GroupAccumulateAvx512<kBf16, 1>(pr, p_stride, v, n, dim, ar);
        break;
    }
  }
}

PAGODA_AVX512 void Avx512GroupScores(const float* q, int64_t rows, const void* const* k, bool bf16,
                                     int64_t n, int64_t dim, float* s, int64_t s_stride) {
  if (bf16) {
    GroupScoresRows<true>(q, rows, k, n, dim, s, s_stride);
  } else {
    GroupScoresRows<false>(q, rows, k, n, dim, s, s_stride);
  }
}

PAGODA_AVX512 void Avx512GroupScoresTransposed(const float* q, int64_t rows, const void* const* k,
                                               bool bf16, int64_t runs, int64_t dim,
                                               int64_t d_stride, float* s, int64_t s_stride) {
  if (bf16) {
    GroupScoresTransposedRows<true>(q, rows, k, runs, dim, d_stride, s, s_stride);
  } else {
    GroupScoresTransposedRows<false>(q, rows, k, runs, dim, d_stride, s, s_stride);
  }
}

PAGODA_AVX512 void Avx512GroupAccumulate(const float* p, int64_t p_stride, int64_t rows,
                                         const void* const* v, bool bf16, int64_t n, int64_t dim,
                                         float* acc) {
  if (bf16) {
    GroupAccumulateRows<true>(p, p_stride, rows, v, n, dim, acc);
  } else {
    GroupAccumulateRows<false>(p, p_stride, rows, v, n, dim, acc);
  }
}

AttentionRowOps SelectBest() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    return {&Avx2Scores, &Avx2Accumulate, "avx2"};
  }
  return PortableAttentionRowOps();
}
#else
AttentionRowOps SelectBest() { return PortableAttentionRowOps(); }
#endif  // PAGODA_HAVE_AVX2_PATH

}  // namespace

const AttentionRowOps& PortableAttentionRowOps() {
  static constexpr AttentionRowOps kOps{&PortableScores, &PortableAccumulate, "portable"};
  return kOps;
}

const AttentionRowOps& BestAttentionRowOps() {
  static const AttentionRowOps ops = SelectBest();
  return ops;
}

const AttentionGroupOps* BestAttentionGroupOps() {
#ifdef PAGODA_HAVE_AVX2_PATH
  static constexpr AttentionGroupOps kAvx512{&Avx512GroupScores, &Avx512GroupScoresTransposed,
                                             &Avx512GroupAccumulate, &Avx512GroupSoftmax, "avx512"};
  static const AttentionGroupOps* const ops = [] {
    const absl::StatusOr<CpuKernelConfig>& config = ActiveCpuKernelConfig();
    return config.ok() && config->isa == CpuIsa::kAvx512 ? &kAvx512 : nullptr;
  }();
  return ops;
#else
  return nullptr;
#endif
}

}  // namespace pagoda::kernels::internal
