#include "kernels/embedding.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "kernels/cpu/internal/block_formats.h"
#include "kernels/cpu/internal/vec_math.h"

namespace pagoda::kernels {

absl::Status EmbeddingParams::Validate() const {
  if (num_tokens < 0 || vocab_size <= 0 || hidden_size <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "embedding: bad shape num_tokens=", num_tokens, " vocab_size=", vocab_size,
        " hidden_size=", hidden_size, " (need num_tokens >= 0, vocab_size > 0, hidden_size > 0)"));
  }
  if (static_cast<int>(table_dtype) >= kNumDTypes) {
    return absl::InvalidArgumentError(
        absl::StrCat("embedding: unknown table dtype ", static_cast<int>(table_dtype)));
  }
  if (hidden_size % Traits(table_dtype).block_elements != 0) {
    return absl::InvalidArgumentError(absl::StrCat("embedding: hidden_size=", hidden_size,
                                                   " is not a whole number of ",
                                                   Traits(table_dtype).block_elements, "-element ",
                                                   std::string(DTypeName(table_dtype)), " blocks"));
  }
  if (table == nullptr) return absl::InvalidArgumentError("embedding: table is null");
  if (num_tokens == 0) return absl::OkStatus();
  if (token_ids == nullptr || output == nullptr) {
    return absl::InvalidArgumentError("embedding: token_ids or output is null");
  }
  return absl::OkStatus();
}

absl::Status EmbeddingParams::ValidateTokenIds() const {
  for (int64_t t = 0; t < num_tokens; ++t) {
    if (token_ids[t] < 0 || token_ids[t] >= vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("embedding: token_ids[", t, "]=", token_ids[t],
                                                     " is outside [0, ", vocab_size, ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status Embedding(const EmbeddingParams& p) {
  if (absl::Status s = p.Validate(); !s.ok()) return s;
  if (!p.token_ids_checked) {
    if (absl::Status s = p.ValidateTokenIds(); !s.ok()) return s;
  }
  const int64_t d = p.hidden_size;
  const DTypeTraits& t = Traits(p.table_dtype);
  const int64_t blocks_per_row = d / t.block_elements;
  const int64_t row_bytes = blocks_per_row * t.block_bytes;
  const auto* table = static_cast<const std::byte*>(p.table);
  const internal::ToFloatFn to_float = internal::FormatOf(p.table_dtype).to_float;
  const bool f32 = p.table_dtype == DType::kF32;
#pragma omp parallel for schedule( \
    static) if (p.num_tokens > 1 && p.num_tokens * d >= 4 * internal::kParallelMinElements)
  for (int64_t i = 0; i < p.num_tokens; ++i) {
    const std::byte* row = table + static_cast<int64_t>(p.token_ids[i]) * row_bytes;
    if (f32) {
      std::memcpy(p.output + i * d, row, static_cast<size_t>(row_bytes));
    } else {
      to_float(row, p.output + i * d, blocks_per_row);
    }
  }
  return absl::OkStatus();
}

}  // namespace pagoda::kernels
