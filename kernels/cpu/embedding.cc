#include "kernels/cpu/embedding.h"

#include <cstddef>
#include <cstring>

#include "kernels/cpu/internal/block_formats.h"
#include "kernels/cpu/internal/vec_math.h"

namespace pagoda::kernels::cpu {

void Embedding(const EmbeddingParams& p) {
  const int64_t d = p.hidden_size;
  const DTypeTraits& t = Traits(p.table_dtype);
  const int64_t blocks_per_row = d / t.block_elements;
  const int64_t row_bytes = blocks_per_row * t.block_bytes;
  const auto* table = static_cast<const std::byte*>(p.table);
  const bool parallel = p.num_tokens > 1 && p.num_tokens * d >= 4 * internal::kParallelMinElements;
  // The dtype is dispatched once: F32 rows are copied, every other format's row of the format
  // table (block_formats.h) widens its rows.
  if (p.table_dtype == DType::kF32) {
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t i = 0; i < p.num_tokens; ++i) {
      std::memcpy(p.output + i * d, table + static_cast<int64_t>(p.token_ids[i]) * row_bytes,
                  static_cast<size_t>(row_bytes));
    }
    return;
  }
  const internal::ToFloatFn to_float = internal::FormatOf(p.table_dtype).to_float;
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t i = 0; i < p.num_tokens; ++i) {
    to_float(table + static_cast<int64_t>(p.token_ids[i]) * row_bytes, p.output + i * d,
             blocks_per_row);
  }
}

}  // namespace pagoda::kernels::cpu
