#include "kernels/cpu/elementwise.h"

#include <algorithm>

namespace pagoda::kernels::cpu {

void BroadcastRows(const BroadcastRowsParams& p) {
  const int64_t stride = p.row_stride();
  for (int64_t r = 0; r < p.rows; ++r) std::copy_n(p.row, p.cols, p.output + r * stride);
}

void Scale(const ScaleParams& p) {
  for (int64_t i = 0; i < p.count; ++i) p.data[i] *= p.factor;
}

void GatherRows(const GatherRowsParams& p) {
  for (int64_t r = 0; r < p.num_rows; ++r) {
    std::copy_n(p.input + p.indices[r] * p.width, p.width, p.output + r * p.width);
  }
}

}  // namespace pagoda::kernels::cpu
