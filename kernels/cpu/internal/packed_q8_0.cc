#include "kernels/cpu/internal/packed_q8_0.h"

#include <cstring>

namespace pagoda::kernels::internal {

void PackQ8_0(const uint8_t* w, int64_t n, int64_t num_blocks, uint8_t* out) {
  constexpr int64_t kBlockBytes = 34;  // float16 scale, 32 int8 quants (block_formats.cc)
  const int64_t row_bytes = num_blocks * kBlockBytes;
  const int64_t groups = (n + kPackedQ8_0Rows - 1) / kPackedQ8_0Rows;
  const int64_t group_bytes = PackedQ8_0GroupBytes(num_blocks);
#pragma omp parallel for schedule(static)
  for (int64_t group = 0; group < groups; ++group) {
    uint8_t* quants = out + group * group_bytes;
    uint8_t* scales = quants + num_blocks * kPackedQ8_0BlockQuantBytes;
    // Padding rows: quants 0 (0x80 once moved), scales 0; the scales' tail padding 0.
    std::memset(quants, 0x80, static_cast<size_t>(num_blocks * kPackedQ8_0BlockQuantBytes));
    std::memset(scales, 0, static_cast<size_t>(PackedQ8_0ScaleBytes(num_blocks)));
    for (int64_t r = 0; r < kPackedQ8_0Rows; ++r) {
      const int64_t row = group * kPackedQ8_0Rows + r;
      if (row >= n) break;
      for (int64_t b = 0; b < num_blocks; ++b) {
        const uint8_t* block = w + row * row_bytes + b * kBlockBytes;
        std::memcpy(scales + (b * kPackedQ8_0Rows + r) * 2, block, 2);
        uint8_t* dst = quants + b * kPackedQ8_0BlockQuantBytes;
        for (int g = 0; g < 8; ++g) {
          for (int e = 0; e < 4; ++e) {
            dst[(g * kPackedQ8_0Rows + r) * 4 + e] = block[2 + 4 * g + e] ^ 0x80;
          }
        }
      }
    }
  }
}

}  // namespace pagoda::kernels::internal
