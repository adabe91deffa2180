#include "kernels/kv_cache_write.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/cpu/kv_cache_write.h"
#include "kernels/cuda/kv_cache_write.h"

namespace pagoda::kernels {

absl::Status KvCacheWriteParams::Validate() const {
  if (num_tokens < 0 || num_kv_heads <= 0 || head_dim <= 0 || block_size <= 0 || num_blocks <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "kv_cache_write: bad shape num_tokens=", num_tokens, " num_kv_heads=", num_kv_heads,
        " head_dim=", head_dim, " block_size=", block_size, " num_blocks=", num_blocks,
        " (need num_tokens >= 0 and the rest > 0)"));
  }
  if (key_cache == nullptr || value_cache == nullptr) {
    return absl::InvalidArgumentError("kv_cache_write: key_cache or value_cache is null");
  }
  if (cache_dtype != DType::kF32 && cache_dtype != DType::kBF16) {
    return absl::InvalidArgumentError(
        absl::StrCat("kv_cache_write: the cache holds float32 or bfloat16, not dtype ",
                     static_cast<int>(cache_dtype)));
  }
  if (num_tokens == 0) return absl::OkStatus();
  if (key == nullptr || value == nullptr || slot_mapping == nullptr) {
    return absl::InvalidArgumentError("kv_cache_write: key, value or slot_mapping is null");
  }
  const int64_t width = num_kv_heads * head_dim;
  if (key_stride < width || value_stride < width) {
    return absl::InvalidArgumentError(
        absl::StrCat("kv_cache_write: key_stride=", key_stride, " value_stride=", value_stride,
                     " must be >= num_kv_heads * head_dim = ", width));
  }
  if (device == Device::kCuda && keys_transposed) {
    return absl::InvalidArgumentError(
        "kv_cache_write: keys stored transposed are a CPU layout; the CUDA twin writes rows");
  }
  if (device == Device::kCuda && !slots_checked) {
    return absl::InvalidArgumentError(
        "kv_cache_write: on CUDA the slot mapping is on the device; check it on the host and set "
        "slots_checked");
  }
  return absl::OkStatus();
}

absl::Status KvCacheWriteParams::ValidateSlots() const {
  const int64_t num_slots = num_blocks * block_size;
  for (int64_t t = 0; t < num_tokens; ++t) {
    const int64_t slot = slot_mapping[t];
    if (slot != -1 && (slot < 0 || slot >= num_slots)) {
      return absl::InvalidArgumentError(absl::StrCat("kv_cache_write: slot_mapping[", t, "]=", slot,
                                                     " is outside [0, ", num_slots,
                                                     ") and not -1"));
    }
  }
  return absl::OkStatus();
}

absl::Status WriteKvCache(const KvCacheWriteParams& params) {
  RETURN_IF_ERROR(params.Validate());
  if (!params.slots_checked) RETURN_IF_ERROR(params.ValidateSlots());
  if (params.num_tokens == 0) return absl::OkStatus();
  if (params.device == Device::kCuda) return cuda::WriteKvCache(params);
  cpu::WriteKvCache(params);
  return absl::OkStatus();
}

}  // namespace pagoda::kernels
