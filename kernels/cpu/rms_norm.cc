#include "kernels/cpu/rms_norm.h"

#include <cmath>

#include "kernels/cpu/internal/vec_math.h"

namespace pagoda::kernels::cpu {
namespace {

// One token. out may alias in; both are read fully before out is written.
PAGODA_KERNEL_CLONES void NormRow(const float* in, const float* __restrict weight, float* out,
                                  float* __restrict residual, int64_t d, float eps) {
  const float* x = in;
  float sum_sq = 0.0f;
  if (residual != nullptr) {
#pragma omp simd reduction(+ : sum_sq)
    for (int64_t i = 0; i < d; ++i) {
      const float v = residual[i] + in[i];
      residual[i] = v;
      sum_sq += v * v;
    }
    x = residual;
  } else {
#pragma omp simd reduction(+ : sum_sq)
    for (int64_t i = 0; i < d; ++i) sum_sq += x[i] * x[i];
  }
  const float inv_rms = 1.0f / std::sqrt(sum_sq / static_cast<float>(d) + eps);
#pragma omp simd
  for (int64_t i = 0; i < d; ++i) out[i] = x[i] * inv_rms * weight[i];
}

}  // namespace

void RmsNorm(const RmsNormParams& p) {
  const int64_t d = p.hidden_size;
  const bool parallel =
      p.num_tokens > 1 && p.num_tokens * d >= internal::kParallelMinCostlyElements;
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t t = 0; t < p.num_tokens; ++t) {
    const int64_t at = p.RowOffset(t);
    NormRow(p.input + at, p.weight, p.output + at,
            p.residual != nullptr ? p.residual + at : nullptr, d, p.eps);
  }
}

}  // namespace pagoda::kernels::cpu
