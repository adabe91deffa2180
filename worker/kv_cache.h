// Storage of the paged KV cache on one worker: for every layer a key and a value tensor of
// shape [num_blocks, block_size, num_kv_heads, head_dim] (fp32 on the CPU). The router owns the
// block tables; this class only owns the memory and performs block copies (copy-on-write).
//
//   ASSIGN_OR_RETURN(KvCache cache, KvCache::Create({.num_layers = 30, .num_blocks = 1024,
//                                                    .block_size = 16, .num_kv_heads = 3,
//                                                    .head_dim = 64}));
//   float* k = cache.key(layer);
#pragma once

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace pagoda {

struct KvCacheShape {
  int64_t num_layers = 0;
  int64_t num_blocks = 0;
  int64_t block_size = 0;  // tokens per block
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;

  int64_t floats_per_block() const { return block_size * num_kv_heads * head_dim; }
  /// Bytes one block takes across all layers, keys and values.
  int64_t bytes_per_block() const {
    return 2 * num_layers * floats_per_block() * static_cast<int64_t>(sizeof(float));
  }
};

class KvCache {
 public:
  /// Allocates (zeroed) storage; every dimension must be positive.
  static absl::StatusOr<KvCache> Create(const KvCacheShape& shape);

  const KvCacheShape& shape() const { return shape_; }
  float* key(int64_t layer) { return keys_[layer].get(); }
  float* value(int64_t layer) { return values_[layer].get(); }
  const float* key(int64_t layer) const { return keys_[layer].get(); }
  const float* value(int64_t layer) const { return values_[layer].get(); }

  /// Copies whole blocks (every layer, K and V): dst <- src for each (src, dst) pair.
  absl::Status CopyBlocks(absl::Span<const std::pair<int32_t, int32_t>> src_dst);

 private:
  explicit KvCache(const KvCacheShape& shape) : shape_(shape) {}

  KvCacheShape shape_;
  std::vector<std::unique_ptr<float[]>> keys_;    // [num_layers]
  std::vector<std::unique_ptr<float[]>> values_;  // [num_layers]
};

}  // namespace pagoda
