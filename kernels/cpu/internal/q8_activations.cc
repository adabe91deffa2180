#include "kernels/cpu/internal/q8_activations.h"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <limits>

#include "kernels/cpu/internal/vec_math.h"

namespace pagoda::kernels::internal {
namespace {

// Written so that GCC and clang vectorize the 32-element loops without pragmas or -ffast-math:
// integer max, a rounding trick instead of nearbyint (a libm call in the baseline clone), selects.

// max |x| over a block as the largest magnitude bit pattern: for non-negative floats the integer
// order is the float order, and NaN sorts above Inf.
inline float BlockAbsMax(const float* x) {
  uint32_t bits = 0;
  for (int l = 0; l < kQ8BlockElements; ++l) {
    bits = std::max(bits, std::bit_cast<uint32_t>(x[l]) & 0x7fffffffu);
  }
  return std::bit_cast<float>(bits);
}

// v rounded to the nearest integer (ties to even: adding and removing 1.5 * 2^23 leaves no
// fraction bits, exact for |v| < 2^22), clamped to [-127, 127]; NaN gives 0.
inline float RoundToQuant(float v) {
  constexpr float kRound = 12582912.0f;
  const float r = std::min(std::max((v + kRound) - kRound, -127.0f), 127.0f);
  return r == r ? r : 0.0f;
}

// The block's scale d (NaN where an input is Inf or NaN) and the multiplier 1 / d (0 where
// every input is 0 or one is not finite, so that those quants are 0).
struct BlockScale {
  float d;
  float inverse;
};
inline BlockScale ScaleOf(const float* x) {
  const float amax = BlockAbsMax(x);
  const bool finite = amax <= std::numeric_limits<float>::max();
  const float d = amax / 127.0f;
  return {finite ? d : std::numeric_limits<float>::quiet_NaN(),
          finite && d != 0.0f ? 1.0f / d : 0.0f};
}

}  // namespace

PAGODA_KERNEL_CLONES void QuantizeRowQ8(const float* __restrict x, Q8Block* __restrict out,
                                        int64_t num_blocks, float* __restrict scaled_sums) {
  for (int64_t b = 0; b < num_blocks; ++b, x += kQ8BlockElements) {
    const BlockScale scale = ScaleOf(x);
    // Three passes over the block, each of which vectorizes (one fused loop does not).
    int32_t q[kQ8BlockElements];
    for (int l = 0; l < kQ8BlockElements; ++l) {
      q[l] = static_cast<int32_t>(RoundToQuant(x[l] * scale.inverse));
    }
    int8_t* qs = out[b].qs;
    for (int l = 0; l < kQ8BlockElements; ++l) qs[l] = static_cast<int8_t>(q[l]);
    int32_t sum = 0;
    for (int l = 0; l < kQ8BlockElements; ++l) sum += q[l];
    out[b].d = scale.d;
    out[b].sum = sum;
    // Here, while the sum is in a register: a separate loop over the blocks' fields vectorizes
    // into a gather through the stack that stalls on every four blocks.
    if (scaled_sums != nullptr) scaled_sums[b] = scale.d * static_cast<float>(sum);
  }
}

}  // namespace pagoda::kernels::internal
