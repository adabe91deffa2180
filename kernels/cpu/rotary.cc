#include "kernels/cpu/rotary.h"

#include "kernels/cpu/internal/vec_math.h"

namespace pagoda::kernels::cpu {
namespace {

// Rotates one head in place; cos and sin hold half = head_dim / 2 entries.
PAGODA_KERNEL_CLONES void RotateHalf(float* __restrict x, const float* __restrict cos,
                                     const float* __restrict sin, int64_t half) {
  float* __restrict x2 = x + half;
#pragma omp simd
  for (int64_t i = 0; i < half; ++i) {
    const float a = x[i];
    const float b = x2[i];
    x[i] = a * cos[i] - b * sin[i];
    x2[i] = b * cos[i] + a * sin[i];
  }
}

PAGODA_KERNEL_CLONES void RotateInterleaved(float* __restrict x, const float* __restrict cos,
                                            const float* __restrict sin, int64_t half) {
#pragma omp simd
  for (int64_t i = 0; i < half; ++i) {
    const float a = x[2 * i];
    const float b = x[2 * i + 1];
    x[2 * i] = a * cos[i] - b * sin[i];
    x[2 * i + 1] = b * cos[i] + a * sin[i];
  }
}

}  // namespace

void ApplyRotary(const RotaryParams& p) {
  const int64_t dim = p.head_dim;
  const int64_t rotary_dim = p.rotated_dims();  // the cache's row width
  const int64_t half = rotary_dim / 2;
  const bool interleaved = p.style == RotaryStyle::kInterleaved;
  const int64_t work = p.num_tokens * (p.num_heads + p.num_kv_heads) * dim;
#pragma omp parallel for schedule(static) if (p.num_tokens > 1 && \
                                              work >= internal::kParallelMinElements)
  for (int64_t t = 0; t < p.num_tokens; ++t) {
    const float* cos = p.cache->cos_sin.data() + static_cast<int64_t>(p.positions[t]) * rotary_dim;
    const float* sin = cos + half;
    for (int64_t h = 0; h < p.num_heads + p.num_kv_heads; ++h) {
      float* x = h < p.num_heads ? p.q + t * p.q_stride + h * dim
                                 : p.k + t * p.k_stride + (h - p.num_heads) * dim;
      if (interleaved) {
        RotateInterleaved(x, cos, sin, half);
      } else {
        RotateHalf(x, cos, sin, half);
      }
    }
  }
}

}  // namespace pagoda::kernels::cpu
