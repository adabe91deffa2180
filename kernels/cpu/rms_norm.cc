#include "kernels/rms_norm.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "kernels/cpu/internal/vec_math.h"

namespace pagoda::kernels {
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

absl::Status RmsNormParams::Validate() const {
  if (num_tokens < 0 || hidden_size <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("rms_norm: bad shape num_tokens=", num_tokens,
                                                   " hidden_size=", hidden_size,
                                                   " (need num_tokens >= 0, hidden_size > 0)"));
  }
  if (!(eps >= 0.0f) || !std::isfinite(eps)) {
    return absl::InvalidArgumentError(
        absl::StrCat("rms_norm: eps must be finite and >= 0, got ", eps));
  }
  if (weight == nullptr) return absl::InvalidArgumentError("rms_norm: weight is null");
  if (num_tokens > 0 && (input == nullptr || output == nullptr)) {
    return absl::InvalidArgumentError("rms_norm: input or output is null");
  }
  if (residual != nullptr && (residual == input || residual == output)) {
    return absl::InvalidArgumentError("rms_norm: residual must not alias input or output");
  }
  return absl::OkStatus();
}

absl::Status RmsNorm(const RmsNormParams& p) {
  if (absl::Status s = p.Validate(); !s.ok()) return s;
  const int64_t d = p.hidden_size;
#pragma omp parallel for schedule(static) if (p.num_tokens > 1 && \
                                              p.num_tokens * d >= internal::kParallelMinElements)
  for (int64_t t = 0; t < p.num_tokens; ++t) {
    NormRow(p.input + t * d, p.weight, p.output + t * d,
            p.residual != nullptr ? p.residual + t * d : nullptr, d, p.eps);
  }
  return absl::OkStatus();
}

}  // namespace pagoda::kernels
