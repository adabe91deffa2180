// Token embedding lookup: out[t, :] = table[ids[t], :], the table in any DType (a row of a
// quantized table is dequantized into fp32 as it is read: SmolLM2's GGUF keeps its embedding,
// which is also its LM head, in Q8_0). Ids outside [0, vocab_size) are InvalidArgument (nothing
// is written past the table).
//
//   RETURN_IF_ERROR(kernels::Embedding({.token_ids = ids, .table = table.data(),
//                                       .table_dtype = table.dtype(), .output = x,
//                                       .num_tokens = n, .vocab_size = v, .hidden_size = d}));
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "common/dtype.h"
#include "kernels/device.h"

namespace pagoda::kernels {

struct EmbeddingParams {
  const int32_t* token_ids = nullptr;  // [num_tokens]
  const void* table = nullptr;         // [vocab_size, hidden_size] in table_dtype
  DType table_dtype = DType::kF32;     // hidden_size must be a whole number of its blocks
  float* output = nullptr;             // [num_tokens, hidden_size]
  int64_t num_tokens = 0;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  /// The caller checked the token ids against vocab_size (ModelRunner does, once per step):
  /// Embedding then skips ValidateTokenIds(). Required on CUDA, where the ids are on the device
  /// (the CUDA twin still never reads outside the table: it leaves such a row unwritten).
  bool token_ids_checked = false;
  /// Where token_ids, table and output live. CUDA tables: F32, F16 or BF16.
  Device device = Device::kCpu;

  /// Cheap (O(1)): shapes and pointers.
  absl::Status Validate() const;
  /// O(num_tokens): every id is in [0, vocab_size). Call after Validate(); host ids only.
  absl::Status ValidateTokenIds() const;
};

/// Validate(), ValidateTokenIds() unless token_ids_checked, then the lookup.
absl::Status Embedding(const EmbeddingParams& params);

}  // namespace pagoda::kernels
