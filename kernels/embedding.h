// Token embedding lookup: out[t, :] = table[ids[t], :].
// Ids outside [0, vocab_size) are InvalidArgument (nothing is written past the table).
#pragma once

#include <cstdint>

#include "absl/status/status.h"

namespace pagoda::kernels {

struct EmbeddingParams {
  const int32_t* token_ids = nullptr;  // [num_tokens]
  const float* table = nullptr;        // [vocab_size, hidden_size]
  float* output = nullptr;             // [num_tokens, hidden_size]
  int64_t num_tokens = 0;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  /// The caller checked the token ids against vocab_size (ModelRunner does, once per step):
  /// Embedding then skips ValidateTokenIds().
  bool token_ids_checked = false;

  /// Cheap (O(1)): shapes and pointers.
  absl::Status Validate() const;
  /// O(num_tokens): every id is in [0, vocab_size). Call after Validate().
  absl::Status ValidateTokenIds() const;
};

/// Validate(), ValidateTokenIds() unless token_ids_checked, then the lookup.
absl::Status Embedding(const EmbeddingParams& params);

}  // namespace pagoda::kernels
