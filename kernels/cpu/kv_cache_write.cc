#include "kernels/kv_cache_write.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "kernels/cpu/internal/half.h"
#include "kernels/cpu/internal/vec_math.h"

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

absl::Status WriteKvCache(const KvCacheWriteParams& p) {
  if (absl::Status s = p.Validate(); !s.ok()) return s;
  if (!p.slots_checked) {
    if (absl::Status s = p.ValidateSlots(); !s.ok()) return s;
  }
  // A slot row [block_size, num_kv_heads, head_dim] at row `slot` is slot * width elements in.
  const int64_t width = p.num_kv_heads * p.head_dim;
  const bool parallel =
      p.num_tokens > 1 && p.num_tokens * width >= 4 * internal::kParallelMinElements;
  if (p.cache_dtype == DType::kF32) {
    const size_t row_bytes = static_cast<size_t>(width) * sizeof(float);
    auto* key_cache = static_cast<float*>(p.key_cache);
    auto* value_cache = static_cast<float*>(p.value_cache);
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t t = 0; t < p.num_tokens; ++t) {
      const int64_t slot = p.slot_mapping[t];
      if (slot < 0) continue;
      std::memcpy(key_cache + slot * width, p.key + t * p.key_stride, row_bytes);
      std::memcpy(value_cache + slot * width, p.value + t * p.value_stride, row_bytes);
    }
    return absl::OkStatus();
  }
  auto* key_cache = static_cast<uint16_t*>(p.key_cache);
  auto* value_cache = static_cast<uint16_t*>(p.value_cache);
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t t = 0; t < p.num_tokens; ++t) {
    const int64_t slot = p.slot_mapping[t];
    if (slot < 0) continue;
    const float* __restrict k = p.key + t * p.key_stride;
    const float* __restrict v = p.value + t * p.value_stride;
    uint16_t* __restrict k_out = key_cache + slot * width;
    uint16_t* __restrict v_out = value_cache + slot * width;
#pragma omp simd
    for (int64_t i = 0; i < width; ++i) {
      k_out[i] = internal::FloatToBf16(k[i]);
      v_out[i] = internal::FloatToBf16(v[i]);
    }
  }
  return absl::OkStatus();
}

}  // namespace pagoda::kernels
