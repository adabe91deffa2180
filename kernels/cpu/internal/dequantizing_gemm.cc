#include "kernels/cpu/internal/dequantizing_gemm.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/internal/block_formats.h"
#include "kernels/cpu/internal/vec_math.h"

namespace pagoda::kernels::internal {
namespace {

constexpr int64_t kChunk = 256;  // elements dequantized per row at a time: whole blocks of all
constexpr int64_t kGroup = 4;    // weight rows dequantized and dotted together
constexpr int64_t kPanelElements = int64_t{64} << 10;  // fp32 elements of one thread's panel

// B's rows and how to reach element (row, col) of them, col a multiple of the block size.
struct Weights {
  const uint8_t* base;
  int64_t row_bytes;
  int64_t block_elements;
  int64_t block_bytes;
  ToFloatFn to_float;

  const uint8_t* At(int64_t row, int64_t col) const {
    return base + row * row_bytes + col / block_elements * block_bytes;
  }
  /// Elements [col, col + len) of row into out (len a whole number of blocks).
  void Load(int64_t row, int64_t col, int64_t len, float* out) const {
    to_float(At(row, col), out, len / block_elements);
  }
};

inline float Finish(float acc, float alpha, float beta, const float* c) {
  return beta == 0.0f ? alpha * acc : alpha * acc + beta * *c;
}

// acc[4 i + r] += dot(a[i, 0:len], w[r, 0:len]) for the m rows of a (row stride lda) and the
// kGroup rows of w (row stride kChunk).
PAGODA_KERNEL_CLONES void AccumulateChunk(const float* __restrict a, int64_t lda, int64_t m,
                                          const float* __restrict w, int64_t len,
                                          float* __restrict acc) {
  const float* w0 = w;
  const float* w1 = w0 + kChunk;
  const float* w2 = w1 + kChunk;
  const float* w3 = w2 + kChunk;
  for (int64_t i = 0; i < m; ++i) {
    const float* x = a + i * lda;
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
    for (int64_t t = 0; t < len; ++t) {
      s0 += x[t] * w0[t];
      s1 += x[t] * w1[t];
      s2 += x[t] * w2[t];
      s3 += x[t] * w3[t];
    }
    acc[kGroup * i + 0] += s0;
    acc[kGroup * i + 1] += s1;
    acc[kGroup * i + 2] += s2;
    acc[kGroup * i + 3] += s3;
  }
}

// Rows [begin, end) of B against the m (<= kDequantizingGemmSkinnyMaxRows) rows of A.
void SkinnyRange(const GemmParams& p, const Weights& w, int64_t begin, int64_t end) {
  alignas(64) float rows_f32[kGroup * kChunk];
  float acc[kDequantizingGemmSkinnyMaxRows * kGroup];
  for (int64_t j = begin; j < end; j += kGroup) {
    const int64_t rows = std::min(kGroup, end - j);
    // A short last group dots zeros in its missing rows and drops those sums.
    if (rows < kGroup) std::memset(rows_f32, 0, sizeof(rows_f32));
    std::fill(acc, acc + p.m * kGroup, 0.0f);
    for (int64_t col = 0; col < p.k; col += kChunk) {
      const int64_t len = std::min(kChunk, p.k - col);
      for (int64_t r = 0; r < rows; ++r) w.Load(j + r, col, len, rows_f32 + r * kChunk);
      AccumulateChunk(p.a + col, p.k, p.m, rows_f32, len, acc);
    }
    for (int64_t i = 0; i < p.m; ++i) {
      for (int64_t r = 0; r < rows; ++r) {
        float* out = p.c + i * p.row_stride() + j + r;
        *out = Finish(acc[kGroup * i + r], p.alpha, p.beta, out);
      }
    }
  }
}

// Rows [begin, end) of B against all rows of A, a dequantized panel at a time.
void PanelRange(const GemmParams& p, const Weights& w, int64_t begin, int64_t end) {
  if (begin >= end) return;
  const int64_t panel_rows = std::min(end - begin, std::max<int64_t>(1, kPanelElements / p.k));
  std::vector<float> panel(static_cast<size_t>(panel_rows * p.k));
  for (int64_t j = begin; j < end; j += panel_rows) {
    const int64_t rows = std::min(panel_rows, end - j);
    w.Load(j, 0, rows * p.k, panel.data());  // rows are back to back: one contiguous run
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(p.m),
                static_cast<blasint>(rows), static_cast<blasint>(p.k), p.alpha, p.a,
                static_cast<blasint>(p.k), panel.data(), static_cast<blasint>(p.k), p.beta, p.c + j,
                static_cast<blasint>(p.row_stride()));
  }
}

}  // namespace

void DequantizingGemm(const GemmParams& p) {
  const DTypeTraits& t = Traits(p.b_dtype);
  const Weights w{.base = static_cast<const uint8_t*>(p.b),
                  .row_bytes = p.k / t.block_elements * t.block_bytes,
                  .block_elements = t.block_elements,
                  .block_bytes = t.block_bytes,
                  .to_float = FormatOf(p.b_dtype).to_float};
  const bool skinny = p.m <= kDequantizingGemmSkinnyMaxRows;
  const int64_t work = p.n * p.k * (skinny ? 1 : p.m);
  const bool parallel = work >= kParallelMinElements * 4 && omp_get_max_threads() > 1;
#pragma omp parallel if (parallel)
  {
    // Contiguous ranges (multiples of kGroup rows) so each thread streams its own part of B.
    const int64_t threads = omp_get_num_threads();
    const int64_t id = omp_get_thread_num();
    const int64_t groups = (p.n + kGroup - 1) / kGroup;
    const int64_t begin = std::min(p.n, groups * id / threads * kGroup);
    const int64_t end = std::min(p.n, groups * (id + 1) / threads * kGroup);
    if (skinny) {
      SkinnyRange(p, w, begin, end);
    } else {
      PanelRange(p, w, begin, end);
    }
  }
}

}  // namespace pagoda::kernels::internal
