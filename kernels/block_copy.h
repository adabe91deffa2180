// Copies whole KV-cache blocks: copy-on-write within one cache, and swapping between two caches
// (device <-> host). A cache is a list of tensors (every layer's keys and values), each
// [num_blocks, block_bytes] bytes; block b of tensor t lives at tensors[t] + b * block_bytes, so
// any cache dtype copies the same way. For each (src, dst) pair, in order, every tensor's block
// dst becomes a copy of block src (a later pair sees what an earlier one wrote; a pair copying a
// block onto itself within one cache leaves it as it is).
//
//   std::vector<const void*> src = ...;  // [2 * num_layers]: keys, then values
//   std::vector<void*> dst = ...;
//   const int32_t pairs[] = {3, 7, 4, 9};  // block 3 -> 7, block 4 -> 9
//   RETURN_IF_ERROR(kernels::CopyBlocks({.src = src.data(), .dst = dst.data(),
//                                        .num_tensors = 2 * num_layers,
//                                        .block_bytes = layer_bytes_per_block,
//                                        .num_src_blocks = n, .num_dst_blocks = n,
//                                        .block_pairs = pairs, .num_pairs = 2}));
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/device.h"

namespace pagoda::kernels {

struct BlockCopyParams {
  const void* const* src = nullptr;  // [num_tensors], each [num_src_blocks, block_bytes] bytes
  void* const* dst = nullptr;        // [num_tensors], each [num_dst_blocks, block_bytes] bytes;
                                     // dst[t] == src[t] (one cache) or no overlap (two caches)
  int64_t num_tensors = 0;
  int64_t block_bytes = 0;  // bytes of one block of one tensor
  int64_t num_src_blocks = 0;
  int64_t num_dst_blocks = 0;
  const int32_t* block_pairs = nullptr;  // [num_pairs, 2]: (src block, dst block)
  int64_t num_pairs = 0;
  /// kCuda: the blocks are copied by the device (cudaMemcpyAsync on the default stream, in pair
  /// order), so src[t] and dst[t] may each be device or host memory (a swap); the src, dst and
  /// block_pairs arrays themselves are always host memory.
  Device device = Device::kCpu;

  /// Shapes and pointers, and every pair's blocks in range: O(num_tensors + num_pairs).
  absl::Status Validate() const;
};

/// Validate(), then the copies. A block outside its cache is InvalidArgument and nothing is
/// copied.
absl::Status CopyBlocks(const BlockCopyParams& params);

}  // namespace pagoda::kernels
