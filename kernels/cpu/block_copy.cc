#include "kernels/cpu/block_copy.h"

#include <cstddef>
#include <cstring>

#include "kernels/cpu/internal/vec_math.h"

namespace pagoda::kernels::cpu {

void CopyBlocks(const BlockCopyParams& p) {
  const int64_t n = p.block_bytes;
  // A thread owns whole tensors and runs the pairs in order within each, so a chain of copies
  // (a -> b, then b -> c) sees the same blocks as a serial loop.
  const bool parallel = p.num_tensors > 1 &&
                        p.num_tensors * p.num_pairs * n >= 4 * internal::kParallelMinElements *
                                                               static_cast<int64_t>(sizeof(float));
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t t = 0; t < p.num_tensors; ++t) {
    const auto* src = static_cast<const std::byte*>(p.src[t]);
    auto* dst = static_cast<std::byte*>(p.dst[t]);
    for (int64_t i = 0; i < p.num_pairs; ++i) {
      const std::byte* from = src + p.block_pairs[2 * i] * n;
      std::byte* to = dst + p.block_pairs[2 * i + 1] * n;
      if (from != to) std::memcpy(to, from, static_cast<size_t>(n));
    }
  }
}

}  // namespace pagoda::kernels::cpu
