#include "kernels/embedding.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "kernels/cpu/internal/vec_math.h"

namespace pagoda::kernels {

absl::Status EmbeddingParams::Validate() const {
  if (num_tokens < 0 || vocab_size <= 0 || hidden_size <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "embedding: bad shape num_tokens=", num_tokens, " vocab_size=", vocab_size,
        " hidden_size=", hidden_size, " (need num_tokens >= 0, vocab_size > 0, hidden_size > 0)"));
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
  const size_t row_bytes = static_cast<size_t>(d) * sizeof(float);
#pragma omp parallel for schedule( \
    static) if (p.num_tokens > 1 && p.num_tokens * d >= 4 * internal::kParallelMinElements)
  for (int64_t t = 0; t < p.num_tokens; ++t) {
    std::memcpy(p.output + t * d, p.table + static_cast<int64_t>(p.token_ids[t]) * d, row_bytes);
  }
  return absl::OkStatus();
}

}  // namespace pagoda::kernels
