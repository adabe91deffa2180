#include "kernels/cpu/activation.h"

#include <algorithm>

#include "kernels/cpu/internal/vec_math.h"

namespace pagoda::kernels::cpu {
namespace {

PAGODA_KERNEL_CLONES void SiluAndMulRow(const float* __restrict gate, const float* __restrict up,
                                        float* __restrict out, int64_t d) {
  // Two passes: fused into one, GCC splits the clamp inside FastExp into masked paths that each
  // carry a division (three divides per vector instead of one).
#pragma omp simd
  for (int64_t i = 0; i < d; ++i) out[i] = internal::FastExp(-gate[i]);
#pragma omp simd
  for (int64_t i = 0; i < d; ++i) out[i] = gate[i] / (1.0f + out[i]) * up[i];
}

// 0.5 x (1 + tanh(u)) = x * sigmoid(2u) = x / (1 + exp(-2u)), u = sqrt(2/pi) (x + 0.044715 x^3):
// SiLU's shape with a cubic argument, so it vectorizes the same way. For large |x| the clamped
// exp gives x / (1 + e^88) = -0 or x / (1 + e^-87) = x, as the tanh form does.
PAGODA_KERNEL_CLONES void GeluTanhAndMulRow(const float* __restrict gate,
                                            const float* __restrict up, float* __restrict out,
                                            int64_t d) {
  constexpr float kTwoSqrtTwoOverPi = 1.5957691216057308f;  // 2 * sqrt(2 / pi)
#pragma omp simd
  for (int64_t i = 0; i < d; ++i) {
    const float x = gate[i];
    out[i] = internal::FastExp(-kTwoSqrtTwoOverPi * (x + 0.044715f * x * x * x));
  }
#pragma omp simd
  for (int64_t i = 0; i < d; ++i) out[i] = gate[i] / (1.0f + out[i]) * up[i];
}

// cap * tanh(x / cap) = cap * (1 - 2 / (1 + exp(2x / cap))).
PAGODA_KERNEL_CLONES void SoftCapRange(float* __restrict data, int64_t count, float cap) {
  const float two_over_cap = 2.0f / cap;
#pragma omp simd
  for (int64_t i = 0; i < count; ++i) {
    data[i] = cap - 2.0f * cap / (1.0f + internal::FastExp(two_over_cap * data[i]));
  }
}

template <typename Row>
void ForEachToken(const SiluAndMulParams& p, Row row) {
  const int64_t d = p.d;
  const bool parallel =
      p.num_tokens > 1 && p.num_tokens * d >= internal::kParallelMinCostlyElements;
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t t = 0; t < p.num_tokens; ++t) {
    const float* in = p.input + t * 2 * d;
    row(in, in + d, p.output + t * d, d);
  }
}

}  // namespace

void SiluAndMul(const SiluAndMulParams& p) { ForEachToken(p, SiluAndMulRow); }

void GeluTanhAndMul(const GeluTanhAndMulParams& p) { ForEachToken(p, GeluTanhAndMulRow); }

void SoftCap(const SoftCapParams& p) {
  constexpr int64_t kChunk = 4096;
  const int64_t chunks = (p.count + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (p.count >= internal::kParallelMinElements)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t begin = c * kChunk;
    SoftCapRange(p.data + begin, std::min(kChunk, p.count - begin), p.cap);
  }
}

}  // namespace pagoda::kernels::cpu
