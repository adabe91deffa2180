#include "kernels/block_copy.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/cpu/block_copy.h"
#include "kernels/cuda/block_copy.h"

namespace pagoda::kernels {

absl::Status BlockCopyParams::Validate() const {
  if (num_tensors <= 0 || block_bytes <= 0 || num_src_blocks <= 0 || num_dst_blocks <= 0 ||
      num_pairs < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "block_copy: bad shape num_tensors=", num_tensors, " block_bytes=", block_bytes,
        " num_src_blocks=", num_src_blocks, " num_dst_blocks=", num_dst_blocks,
        " num_pairs=", num_pairs, " (need num_pairs >= 0 and the rest > 0)"));
  }
  if (src == nullptr || dst == nullptr) {
    return absl::InvalidArgumentError("block_copy: src or dst is null");
  }
  for (int64_t t = 0; t < num_tensors; ++t) {
    if (src[t] == nullptr || dst[t] == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("block_copy: tensor ", t, " has a null src or dst"));
    }
  }
  if (num_pairs == 0) return absl::OkStatus();
  if (block_pairs == nullptr) return absl::InvalidArgumentError("block_copy: block_pairs is null");
  for (int64_t i = 0; i < num_pairs; ++i) {
    const int32_t s = block_pairs[2 * i];
    const int32_t d = block_pairs[2 * i + 1];
    if (s < 0 || s >= num_src_blocks || d < 0 || d >= num_dst_blocks) {
      if (num_src_blocks == num_dst_blocks) {
        return absl::InvalidArgumentError(
            absl::StrCat("block copy ", s, " -> ", d, " is outside [0, ", num_src_blocks, ")"));
      }
      return absl::InvalidArgumentError(absl::StrCat("block copy ", s, " -> ", d,
                                                     " is outside [0, ", num_src_blocks,
                                                     ") -> [0, ", num_dst_blocks, ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status CopyBlocks(const BlockCopyParams& params) {
  RETURN_IF_ERROR(params.Validate());
  if (params.num_pairs == 0) return absl::OkStatus();
  if (params.device == Device::kCuda) return cuda::CopyBlocks(params);
  cpu::CopyBlocks(params);
  return absl::OkStatus();
}

}  // namespace pagoda::kernels
