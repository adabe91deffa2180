#include "kernels/cpu/internal/packed_q4.h"

#include <cstring>

namespace pagoda::kernels::internal {

void PackQ4(const uint8_t* w, int64_t n, int64_t num_blocks, bool with_min, uint8_t* out) {
  // float16 d, (Q4_1: float16 m,) 16 bytes of nibbles (block_formats.cc).
  const int64_t fields = with_min ? 4 : 2;
  const int64_t block_bytes = fields + 16;
  const int64_t row_bytes = num_blocks * block_bytes;
  const int64_t scale_block_bytes = PackedQ4BlockScaleBytes(with_min);
  const int64_t groups = (n + kPackedQ4Rows - 1) / kPackedQ4Rows;
  const int64_t group_bytes = PackedQ4GroupBytes(num_blocks, with_min);
#pragma omp parallel for schedule(static)
  for (int64_t group = 0; group < groups; ++group) {
    uint8_t* quants = out + group * group_bytes;
    uint8_t* scales = quants + num_blocks * kPackedQ4BlockQuantBytes;
    // Padding rows: quants, d and m 0; the fields' tail padding 0.
    std::memset(quants, 0, static_cast<size_t>(group_bytes));
    for (int64_t r = 0; r < kPackedQ4Rows; ++r) {
      const int64_t row = group * kPackedQ4Rows + r;
      if (row >= n) break;
      for (int64_t b = 0; b < num_blocks; ++b) {
        const uint8_t* block = w + row * row_bytes + b * block_bytes;
        uint8_t* s = scales + b * scale_block_bytes;
        std::memcpy(s + r * 2, block, 2);
        if (with_min) std::memcpy(s + (kPackedQ4Rows + r) * 2, block + 2, 2);
        uint8_t* dst = quants + b * kPackedQ4BlockQuantBytes;
        for (int g = 0; g < 4; ++g) {
          std::memcpy(dst + (g * kPackedQ4Rows + r) * 4, block + fields + 4 * g, 4);
        }
      }
    }
  }
}

}  // namespace pagoda::kernels::internal
