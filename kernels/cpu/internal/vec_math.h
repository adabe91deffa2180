// Helpers shared by the CPU kernels: an ISA-dispatch attribute, the vectorizable exp (also the
// worker's sampler's), and the size below which a kernel stays on the calling thread.
//
//   PAGODA_KERNEL_CLONES void Row(const float* x, float* y, int64_t n) {
//   #pragma omp simd
//     for (int64_t i = 0; i < n; ++i) y[i] = internal::FastExp(x[i]);
//   }
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>

// Builds AVX-512, AVX2+FMA and baseline versions of a hot function and picks one at load time,
// so the binary stays portable (no -march=native) yet uses the wide units where they exist.
// Only leaf functions without OpenMP regions carry it: helpers they call must inline.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__SANITIZE_ADDRESS__)
#define PAGODA_KERNEL_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define PAGODA_KERNEL_CLONES
#endif

namespace pagoda::kernels::internal {

// Elements of streaming work below which forking threads costs more than it saves.
inline constexpr int64_t kParallelMinElements = 1 << 15;
// The same for work of a few nanoseconds an element (an exp and a division each: SiLU, GELU;
// RmsNorm's two passes): a speculative verification's 13 rows of an MLP (20K elements) take 8 us
// alone (BM_SiluAndMul/tokens:13), while waking the OpenMP team costs about one.
inline constexpr int64_t kParallelMinCostlyElements = 1 << 12;

/// What FastExp returns below its range (x < -87, -inf included).
enum class ExpUnderflow {
  /// x is clamped to [-87, 88]: exp(-87) ~ 1.6e-38 below the range; NaN stays NaN.
  kClamp,
  /// Exactly 0 below -87 (NaN gives 0 too), for x <= 0 only: softmax weights, where a masked
  /// (-inf) logit must weigh nothing and 2^-125 is no probability next to the max's 1.
  kZero,
};

/// exp(x), Cephes' expf polynomial (about 1-2 ulp from std::exp), written so that loops over it
/// vectorize: no calls, no branches (std::exp does not vectorize without -ffast-math; callers
/// outside pagoda_kernels compile with -fno-trapping-math so the selects if-convert). The one
/// fast exp of the code base: the CPU kernels use kClamp, the worker's sampler kZero.
template <ExpUnderflow kUnderflow = ExpUnderflow::kClamp>
inline float FastExp(float x) {
  float clamped;
  if constexpr (kUnderflow == ExpUnderflow::kClamp) {
    // std::min/max (not ?: on x) map onto minps/maxps, so the loop stays one straight path.
    clamped = std::min(std::max(x, -87.0f), 88.0f);
  } else {
    clamped = x > -88.0f ? x : -88.0f;
  }
  // n = round(x / ln 2) with the 1.5 * 2^23 trick (exact for |x / ln 2| < 2^22; floor would need
  // SSE4.1 to vectorize).
  constexpr float kRound = 12582912.0f;
  const float n = (clamped * 1.44269504088896341f + kRound) - kRound;
  // r = x - n ln 2, with ln 2 split in two (Cody-Waite).
  float r = clamped - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  // 2^n; kZero makes it 0 below -87 with an integer select, which stays branch-free.
  int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  if constexpr (kUnderflow == ExpUnderflow::kZero) bits = x < -87.0f ? 0 : bits;
  return p * std::bit_cast<float>(bits);
}

}  // namespace pagoda::kernels::internal
