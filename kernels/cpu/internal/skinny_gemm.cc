#include "kernels/cpu/internal/skinny_gemm.h"

#include <omp.h>

#include <algorithm>

#include "kernels/cpu/internal/vec_math.h"

namespace pagoda::kernels::internal {
namespace {

inline float Finish(float acc, float alpha, float beta, const float* c) {
  return beta == 0.0f ? alpha * acc : alpha * acc + beta * *c;
}

// Rows [n_begin, n_end) of B against all m rows of A.
PAGODA_KERNEL_CLONES void SkinnyRange(const float* __restrict a, const float* __restrict b,
                                      float* __restrict c, int64_t m, int64_t ldc, int64_t k,
                                      int64_t n_begin, int64_t n_end, float alpha, float beta) {
  int64_t j = n_begin;
  for (; j + 4 <= n_end; j += 4) {
    const float* b0 = b + j * k;
    const float* b1 = b0 + k;
    const float* b2 = b1 + k;
    const float* b3 = b2 + k;
    for (int64_t i = 0; i < m; ++i) {
      const float* x = a + i * k;
      float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
      for (int64_t t = 0; t < k; ++t) {
        s0 += x[t] * b0[t];
        s1 += x[t] * b1[t];
        s2 += x[t] * b2[t];
        s3 += x[t] * b3[t];
      }
      float* out = c + i * ldc + j;
      out[0] = Finish(s0, alpha, beta, out);
      out[1] = Finish(s1, alpha, beta, out + 1);
      out[2] = Finish(s2, alpha, beta, out + 2);
      out[3] = Finish(s3, alpha, beta, out + 3);
    }
  }
  for (; j < n_end; ++j) {
    const float* b0 = b + j * k;
    for (int64_t i = 0; i < m; ++i) {
      const float* x = a + i * k;
      float s0 = 0.0f;
#pragma omp simd reduction(+ : s0)
      for (int64_t t = 0; t < k; ++t) s0 += x[t] * b0[t];
      c[i * ldc + j] = Finish(s0, alpha, beta, c + i * ldc + j);
    }
  }
}

}  // namespace

void SkinnyGemm(const float* a, const float* b, float* c, int64_t m, int64_t n, int64_t k,
                float alpha, float beta, int64_t ldc) {
  const bool parallel = n * k >= kParallelMinElements * 4 && omp_get_max_threads() > 1;
#pragma omp parallel if (parallel)
  {
    // Contiguous ranges (multiples of 4 rows) so each thread streams its own part of B.
    const int64_t threads = omp_get_num_threads();
    const int64_t id = omp_get_thread_num();
    const int64_t groups = (n + 3) / 4;
    const int64_t begin = std::min(n, groups * id / threads * 4);
    const int64_t end = std::min(n, groups * (id + 1) / threads * 4);
    SkinnyRange(a, b, c, m, ldc, k, begin, end, alpha, beta);
  }
}

}  // namespace pagoda::kernels::internal
