#include "kernels/cpu/internal/attention_rows.h"

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

}  // namespace pagoda::kernels::internal
