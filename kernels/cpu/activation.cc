#include "kernels/cpu/activation.h"

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

}  // namespace

void SiluAndMul(const SiluAndMulParams& p) {
  const int64_t d = p.d;
#pragma omp parallel for schedule(static) if (p.num_tokens > 1 && \
                                              p.num_tokens * d >= internal::kParallelMinElements)
  for (int64_t t = 0; t < p.num_tokens; ++t) {
    const float* in = p.input + t * 2 * d;
    SiluAndMulRow(in, in + d, p.output + t * d, d);
  }
}

}  // namespace pagoda::kernels::cpu
