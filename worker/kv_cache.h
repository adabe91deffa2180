// Storage of the paged KV cache on one worker: for every layer a key and a value tensor of
// shape [num_blocks, num_kv_heads, block_size, head_dim] (the keys [num_blocks, num_kv_heads,
// head_dim, block_size] where keys_transposed: kernels/kv_cache_write.h) in the cache's dtype (fp32
// or bf16; the attention kernels convert to fp32 as they read), on the host or on the CUDA device
// (KvCacheShape::device: then key()/value() are device pointers). The router owns the block
// tables; this class only owns the memory and performs block copies (copy-on-write, by the CUDA
// block-copy twin on the device) and swaps between caches (host <-> device).
//
//   ASSIGN_OR_RETURN(KvCache cache, KvCache::Create({.num_layers = 30, .num_blocks = 1024,
//                                                    .block_size = 16, .num_kv_heads = 3,
//                                                    .head_dim = 64, .dtype = DType::kBF16}));
//   void* k = cache.key(layer);
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/dtype.h"
#include "kernels/device.h"
#include "kernels/tensor.h"

namespace pagoda {

struct KvCacheShape {
  int64_t num_layers = 0;
  int64_t num_blocks = 0;
  int64_t block_size = 0;  // tokens per block
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  DType dtype = DType::kF32;     // kF32 or kBF16
  Device device = Device::kCpu;  // where the storage lives
  /// The keys stored transposed within each head's block: the layout the attention on `device`
  /// prefers (kernels::PrefersTransposedKeys); a swap copies blocks between caches of one layout.
  bool keys_transposed = false;

  int64_t elements_per_block() const { return block_size * num_kv_heads * head_dim; }
  /// Bytes of one block of one layer's keys (or values).
  int64_t layer_bytes_per_block() const {
    return elements_per_block() * Traits(dtype).block_bytes / Traits(dtype).block_elements;
  }
  /// Bytes one block takes across all layers, keys and values.
  int64_t bytes_per_block() const { return 2 * num_layers * layer_bytes_per_block(); }
};

/// The KV cache types: F32 and BF16.
bool IsKvCacheDType(DType dtype);

class KvCache {
 public:
  /// Allocates (zeroed) storage on shape.device; every dimension must be positive and the dtype
  /// F32 or BF16. On CUDA without a device (or a CUDA build): FailedPrecondition.
  static absl::StatusOr<KvCache> Create(const KvCacheShape& shape);
  /// An empty cache: no layers, no storage.
  KvCache() = default;

  const KvCacheShape& shape() const { return shape_; }
  void* key(int64_t layer) { return keys_[layer].mutable_data(); }
  void* value(int64_t layer) { return values_[layer].mutable_data(); }
  const void* key(int64_t layer) const { return keys_[layer].data(); }
  const void* value(int64_t layer) const { return values_[layer].data(); }
  /// Bytes of storage (keys and values of every layer).
  int64_t num_bytes() const { return shape_.num_blocks * shape_.bytes_per_block(); }

  /// Copies whole blocks (every layer, K and V): dst <- src for each (src, dst) pair, in order
  /// (kernels::CopyBlocks; on the device, done when this returns). A block outside the cache is
  /// InvalidArgument and nothing is copied.
  absl::Status CopyBlocks(absl::Span<const std::pair<int32_t, int32_t>> src_dst);

  /// Copies block `src_block` of `src` into block `dst_block` of `dst` for each pair (every
  /// layer, K and V): swapping between device and host. Both caches have the same layers,
  /// per-block shape and dtype (else InvalidArgument), on any devices; the copies are done when
  /// this returns. A block outside its cache is InvalidArgument and nothing is copied.
  static absl::Status CopyBlocksAcross(const KvCache& src, KvCache& dst,
                                       absl::Span<const std::pair<int32_t, int32_t>> src_dst);

 private:
  explicit KvCache(const KvCacheShape& shape) : shape_(shape) {}

  KvCacheShape shape_;
  std::vector<Tensor> keys_;    // [num_layers]
  std::vector<Tensor> values_;  // [num_layers]
};

}  // namespace pagoda
