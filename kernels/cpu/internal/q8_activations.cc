#include "kernels/cpu/internal/q8_activations.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/cpu/internal/vec_math.h"

namespace pagoda::kernels::internal {

PAGODA_KERNEL_CLONES void QuantizeRowQ8(const float* __restrict x, Q8Block* __restrict out,
                                        int64_t num_blocks) {
  for (int64_t b = 0; b < num_blocks; ++b, x += kQ8BlockElements) {
    float amax = 0.0f;
    float sum_x = 0.0f;  // only to spot a non-finite input, which max() would drop
    for (int l = 0; l < kQ8BlockElements; ++l) {
      amax = std::max(amax, std::fabs(x[l]));
      sum_x += x[l] * 0.0f;  // 0 for finite x, NaN for Inf or NaN
    }
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    int32_t sum = 0;
    int8_t* qs = out[b].qs;
    for (int l = 0; l < kQ8BlockElements; ++l) {
      // |x * id| <= 127 up to rounding; the clamp also keeps Inf/NaN blocks in range.
      const float q = std::clamp(std::nearbyint(x[l] * id), -127.0f, 127.0f);
      const int32_t v = std::isnan(q) ? 0 : static_cast<int32_t>(q);
      qs[l] = static_cast<int8_t>(v);
      sum += v;
    }
    out[b].d = sum_x == 0.0f ? d : std::numeric_limits<float>::quiet_NaN();
    out[b].sum = sum;
  }
}

void RoundRowToQ8(const float* x, float* out, int64_t num_blocks) {
  Q8Block block;
  for (int64_t b = 0; b < num_blocks; ++b) {
    QuantizeRowQ8(x + b * kQ8BlockElements, &block, 1);
    for (int l = 0; l < kQ8BlockElements; ++l) {
      out[b * kQ8BlockElements + l] = block.d * static_cast<float>(block.qs[l]);
    }
  }
}

}  // namespace pagoda::kernels::internal
