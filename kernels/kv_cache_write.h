// Writes the keys and values of new tokens into their slots of the paged KV cache
// (vLLM's reshape_and_cache). slot = block_id * block_size + offset_in_block; a slot of -1
// skips the token (the padding entries of ModelRunner's CUDA graph batches). The cache holds
// fp32 or bf16 (rounded to nearest even as it is written); keys and values come in fp32.
//
// The cache's layout, on every device: [num_blocks, num_kv_heads, block_size, head_dim], so that
// one KV head's rows of a block are contiguous (KvCacheOffset): paged attention reads one head
// at a time, a block's worth (block_size * head_dim elements) in one run. Where paged attention
// prefers it (PrefersTransposedKeys in paged_attention.h: the CPU's AVX-512 form), the keys are
// stored transposed within each head's block instead, [num_blocks, num_kv_heads, head_dim,
// block_size] (TransposedKeyOffset): a dimension of 16 positions is one vector, so the scores
// need no reduction per position. The values keep the row layout.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "common/dtype.h"
#include "kernels/device.h"

namespace pagoda::kernels {

struct KvCacheWriteParams {
  const float* key = nullptr;    // [num_tokens, num_kv_heads, head_dim], row stride key_stride
  const float* value = nullptr;  // [num_tokens, num_kv_heads, head_dim], row stride value_stride
  void* key_cache = nullptr;     // [num_blocks, num_kv_heads, block_size, head_dim] in cache_dtype
  void* value_cache = nullptr;   // [num_blocks, num_kv_heads, block_size, head_dim] in cache_dtype
  DType cache_dtype = DType::kF32;        // kF32 or kBF16
  const int64_t* slot_mapping = nullptr;  // [num_tokens]
  int64_t num_tokens = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t block_size = 0;
  int64_t num_blocks = 0;
  int64_t key_stride = 0;    // floats between consecutive tokens of key
  int64_t value_stride = 0;  // floats between consecutive tokens of value
  /// The keys are stored transposed within each head's block (TransposedKeyOffset). CPU only.
  bool keys_transposed = false;
  /// The caller checked every slot once for the whole step (ModelRunner derives them from
  /// block tables it checked): WriteKvCache then skips ValidateSlots(), which would repeat the
  /// same O(num_tokens) scan in every layer. Required on CUDA, where the slots are on the device
  /// (the CUDA twin still skips a slot outside the cache rather than write there).
  bool slots_checked = false;
  Device device = Device::kCpu;  // where key, value, the caches and slot_mapping live

  /// Cheap (O(1)): shapes, pointers and strides.
  absl::Status Validate() const;
  /// O(num_tokens): every slot is -1 or in [0, num_blocks * block_size). Call after Validate();
  /// host slots only.
  absl::Status ValidateSlots() const;
};

/// Where KV head `head` of row `row` of block `block` begins in a key or value cache, in
/// elements.
inline int64_t KvCacheRowOffset(int64_t block, int64_t row, int64_t head, int64_t num_kv_heads,
                                int64_t head_dim, int64_t block_size) {
  return ((block * num_kv_heads + head) * block_size + row) * head_dim;
}

/// The same for cache slot `slot` (block slot / block_size, row slot % block_size).
inline int64_t KvCacheOffset(int64_t slot, int64_t head, int64_t num_kv_heads, int64_t head_dim,
                             int64_t block_size) {
  return KvCacheRowOffset(slot / block_size, slot % block_size, head, num_kv_heads, head_dim,
                          block_size);
}

/// Where element d of KV head `head`'s key in row `row` of block `block` lies in a key cache
/// stored transposed ([num_blocks, num_kv_heads, head_dim, block_size]), in elements.
inline int64_t TransposedKeyOffset(int64_t block, int64_t row, int64_t head, int64_t d,
                                   int64_t num_kv_heads, int64_t head_dim, int64_t block_size) {
  return ((block * num_kv_heads + head) * head_dim + d) * block_size + row;
}

/// Validate(), ValidateSlots() unless slots_checked, then the writes. A slot outside
/// [0, num_blocks * block_size) (other than -1) is InvalidArgument and nothing is written.
absl::Status WriteKvCache(const KvCacheWriteParams& params);

}  // namespace pagoda::kernels
