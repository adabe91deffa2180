#include "worker/kv_cache.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace pagoda {

bool IsKvCacheDType(DType dtype) { return dtype == DType::kF32 || dtype == DType::kBF16; }

absl::StatusOr<KvCache> KvCache::Create(const KvCacheShape& shape) {
  if (shape.num_layers <= 0 || shape.num_blocks <= 0 || shape.block_size <= 0 ||
      shape.num_kv_heads <= 0 || shape.head_dim <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV cache shape must be positive: layers=", shape.num_layers,
                     " blocks=", shape.num_blocks, " block_size=", shape.block_size,
                     " kv_heads=", shape.num_kv_heads, " head_dim=", shape.head_dim));
  }
  if (!IsKvCacheDType(shape.dtype)) {
    return absl::InvalidArgumentError(absl::StrCat("the KV cache stores float32 or bfloat16, not ",
                                                   std::string(DTypeName(shape.dtype))));
  }
  KvCache cache(shape);
  for (int64_t layer = 0; layer < shape.num_layers; ++layer) {
    for (std::vector<Tensor>* tensors : {&cache.keys_, &cache.values_}) {
      absl::StatusOr<Tensor> t = Tensor::Zeros(
          shape.dtype, {shape.num_blocks, shape.block_size, shape.num_kv_heads, shape.head_dim});
      if (!t.ok()) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "cannot allocate the KV cache: ", shape.num_blocks, " blocks of ",
            shape.bytes_per_block(), " bytes (", shape.num_blocks * shape.bytes_per_block() >> 20,
            " MiB); lower the number of blocks"));
      }
      tensors->push_back(*std::move(t));
    }
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
  for (const auto& [src, dst] : src_dst) CopyBlockAcross(*this, src, *this, dst);
  return absl::OkStatus();
}

void KvCache::CopyBlockAcross(const KvCache& src, int32_t src_block, KvCache& dst,
                              int32_t dst_block) {
  const int64_t n = src.shape().layer_bytes_per_block();
  for (int64_t layer = 0; layer < src.shape().num_layers; ++layer) {
    std::memcpy(static_cast<std::byte*>(dst.key(layer)) + dst_block * n,
                static_cast<const std::byte*>(src.key(layer)) + src_block * n, n);
    std::memcpy(static_cast<std::byte*>(dst.value(layer)) + dst_block * n,
                static_cast<const std::byte*>(src.value(layer)) + src_block * n, n);
  }
}

}  // namespace pagoda
