#include "kernels/embedding.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cuda/embedding.h"

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
  if (device == Device::kCuda && !token_ids_checked) {
    return absl::InvalidArgumentError(
        "embedding: on CUDA the token ids are on the device; check them on the host and set "
        "token_ids_checked");
  }
  if (device == Device::kCuda && table_dtype != DType::kF32 && table_dtype != DType::kF16 &&
      table_dtype != DType::kBF16) {
    return absl::UnimplementedError(
        absl::StrCat("embedding: the CUDA twin reads F32, F16 or BF16 "
                     "tables, not ",
                     std::string(DTypeName(table_dtype))));
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

absl::Status Embedding(const EmbeddingParams& params) {
  RETURN_IF_ERROR(params.Validate());
  if (!params.token_ids_checked) RETURN_IF_ERROR(params.ValidateTokenIds());
  if (params.num_tokens == 0) return absl::OkStatus();
  if (params.device == Device::kCuda) return cuda::Embedding(params);
  cpu::Embedding(params);
  return absl::OkStatus();
}

}  // namespace pagoda::kernels
