#include "worker/kv_cache.h"

#include <algorithm>
#include <new>

#include "absl/strings/str_cat.h"

namespace pagoda {

absl::StatusOr<KvCache> KvCache::Create(const KvCacheShape& shape) {
  if (shape.num_layers <= 0 || shape.num_blocks <= 0 || shape.block_size <= 0 ||
      shape.num_kv_heads <= 0 || shape.head_dim <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV cache shape must be positive: layers=", shape.num_layers,
                     " blocks=", shape.num_blocks, " block_size=", shape.block_size,
                     " kv_heads=", shape.num_kv_heads, " head_dim=", shape.head_dim));
  }
  KvCache cache(shape);
  const int64_t floats = shape.num_blocks * shape.floats_per_block();
  for (int64_t layer = 0; layer < shape.num_layers; ++layer) {
    auto* k = new (std::nothrow) float[floats]();
    auto* v = k == nullptr ? nullptr : new (std::nothrow) float[floats]();
    if (v == nullptr) {
      delete[] k;
      return absl::ResourceExhaustedError(absl::StrCat(
          "cannot allocate the KV cache: ", shape.num_blocks, " blocks of ",
          shape.bytes_per_block(), " bytes (", shape.num_blocks * shape.bytes_per_block() >> 20,
          " MiB); lower the number of blocks"));
    }
    cache.keys_.emplace_back(k);
    cache.values_.emplace_back(v);
  }
  return cache;
}

absl::Status KvCache::CopyBlocks(absl::Span<const std::pair<int32_t, int32_t>> src_dst) {
  for (const auto& [src, dst] : src_dst) {
    if (src < 0 || src >= shape_.num_blocks || dst < 0 || dst >= shape_.num_blocks) {
      return absl::InvalidArgumentError(absl::StrCat("block copy ", src, " -> ", dst,
                                                     " is outside [0, ", shape_.num_blocks, ")"));
    }
  }
  const int64_t n = shape_.floats_per_block();
  for (int64_t layer = 0; layer < shape_.num_layers; ++layer) {
    for (const auto& [src, dst] : src_dst) {
      std::copy_n(keys_[layer].get() + src * n, n, keys_[layer].get() + dst * n);
      std::copy_n(values_[layer].get() + src * n, n, values_[layer].get() + dst * n);
    }
  }
  return absl::OkStatus();
}

}  // namespace pagoda
