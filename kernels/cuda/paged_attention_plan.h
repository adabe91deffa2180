// How the CUDA twin of paged attention (kernels/cuda/paged_attention.cu) cuts one launch into
// blocks: which kernel, how many blocks along each grid axis, and the workspace and shared memory
// they need. Host-only and header-only (the .cu and the CPU unit test both include it; it is
// compiled with or without CUDA), decided from the params' scalars alone: the block tables,
// query starts and sequence lengths are on the device and never read here.
//
//   ASSIGN_OR_RETURN(const PagedAttentionPlan plan, PlanPagedAttention(params));
//
// Two paths:
// - kDecode (every sequence's query at most kDecodeMaxQueryLen tokens, per the params'
//   max_query_len): one block per (query token, KV head and chunk of its GQA group, context
//   partition of kPartitionSize positions). The block computes all the chunk's query heads
//   against its partition, so the partition's K/V rows are read once per group, not once per
//   query head. With more than one partition each block leaves its unnormalized softmax state
//   (max, sum, weighted V sum) in the workspace, and a second kernel, one block per (token, query
//   head), combines the partitions. Partitions past a token's context exit at once.
// - kPrefill (longer chunks): FlashAttention-style, one block per (tile of tile_tokens query
//   tokens of one sequence, KV head and chunk of its group); the tile's K/V positions are loaded
//   into shared memory kKvTile at a time and used by every query row of the tile, with an online
//   softmax in fp32. Blocks stride over a sequence's tiles, so any grid is correct and
//   max_query_len only sets how many run side by side.
//
// CUDA graphs: the grid depends on num_tokens, num_seqs, max_query_len and max_blocks_per_seq
// only (a captured decode batch fixes all four: max_query_len 1, max_blocks_per_seq the model
// length's blocks), so a graph replayed with other sequence lengths and block tables is right.
#pragma once

#include <algorithm>
#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "kernels/paged_attention.h"

namespace pagoda::kernels::cuda {

/// The largest head_dim the twin handles (PagedAttentionParams::Validate refuses more on CUDA).
inline constexpr int64_t kMaxHeadDim = 256;
/// Sequences whose queries are at most this long take the decode path (a decode is 1, a
/// speculative verification chunk a few): each token's block then reads its partition's K/V on
/// its own, which costs little while tokens of one sequence are few. Not tuned on a device.
inline constexpr int64_t kDecodeMaxQueryLen = 8;
/// Context positions per decode block (vLLM's v2 kernel's 512); contexts of at most this many
/// need no combine pass. The partials' workspace grows with max_blocks_per_seq / this.
inline constexpr int64_t kPartitionSize = 512;
/// Query heads of one GQA group per block, both paths (their q rows and scores in shared
/// memory); larger groups are cut into chunks of nearly equal size.
inline constexpr int64_t kMaxHeadsPerBlock = 8;
inline constexpr int kDecodeThreads = 128;
inline constexpr int kCombineThreads = 128;
/// Prefill: 8 warps; query rows (tile tokens x heads of the chunk) per block, 4 per warp.
inline constexpr int kPrefillThreads = 256;
inline constexpr int64_t kPrefillRows = 32;
/// Prefill: K/V positions per shared-memory tile (one per lane when scoring).
inline constexpr int64_t kKvTile = 32;
/// Prefill: at most this many blocks along a sequence's query tiles; they stride over the rest.
/// The grid has num_seqs rows of them, so a step of many decodes beside one long chunk would
/// otherwise launch (chunk tiles x num_seqs x heads) blocks, nearly all of them empty. 32 x the
/// KV heads still fill the device for one long prompt (8 KV heads: 256 blocks, 2 per SM of an
/// H100 at head_dim 256), and the strided tiles mix early (short) and late (long) causal rows.
inline constexpr int64_t kMaxTileBlocks = 32;
/// Shared memory a block may use without the opt-in attribute.
inline constexpr int64_t kDefaultSharedBytes = 48 * 1024;

struct PagedAttentionPlan {
  enum class Path { kDecode, kPrefill };
  Path path = Path::kDecode;
  int64_t group = 0;  // query heads per KV head
  int64_t heads_per_block =
      0;                      // query heads of one group per block (the last chunk may have fewer)
  int64_t head_chunks = 0;    // blocks per KV head along its group
  int64_t max_query_len = 0;  // params.max_query_len (else num_tokens), at most num_tokens

  // kDecode.
  int64_t num_partitions = 0;   // ceil(max_blocks_per_seq * block_size / kPartitionSize)
  int64_t workspace_bytes = 0;  // > 0 only with num_partitions > 1: see DecodeWorkspace
  // kPrefill.
  int64_t tile_tokens = 0;   // query tokens per tile: kPrefillRows / heads_per_block
  int64_t tile_blocks = 0;   // blocks along a sequence's tiles (<= kMaxTileBlocks; they stride)
  int64_t k_row_stride = 0;  // floats between K rows in shared memory: head_dim made odd
  int64_t shared_bytes = 0;  // dynamic shared memory of a block: see PrefillSharedLayout
  // The attention kernel's grid: decode (num_tokens, num_kv_heads * head_chunks, num_partitions);
  // prefill (tile_blocks, num_seqs, num_kv_heads * head_chunks). The combine kernel's is
  // (num_tokens, num_heads).
  int64_t grid_x = 0;
  int64_t grid_y = 0;
  int64_t grid_z = 0;
};

/// The decode partials in the workspace, each [num_tokens, num_heads, num_partitions] (the
/// partition fastest): the running max, then the sum of weights, then the unnormalized output
/// ([..., head_dim]). Offsets in floats.
struct DecodeWorkspace {
  int64_t max_offset = 0;
  int64_t sum_offset = 0;
  int64_t acc_offset = 0;
  int64_t floats = 0;
};

inline DecodeWorkspace DecodeWorkspaceLayout(int64_t num_tokens, int64_t num_heads,
                                             int64_t num_partitions, int64_t head_dim) {
  const int64_t states = num_tokens * num_heads * num_partitions;
  return {0, states, 2 * states, states * (2 + head_dim)};
}

/// A prefill block's dynamic shared memory: kKvTile cache row offsets (int64), then the tile's
/// query rows [kPrefillRows, head_dim], K rows [kKvTile, k_row_stride] and V rows [kKvTile,
/// head_dim] (floats). Offsets in floats from the start, the int64s first for alignment.
struct PrefillSharedLayout {
  int64_t q_offset = 0;
  int64_t k_offset = 0;
  int64_t v_offset = 0;
  int64_t bytes = 0;
};

/// head_dim made odd: lane c reads K row c at column d from bank (c * stride + d) % 32, which
/// differs for all 32 lanes only when the stride is odd.
inline int64_t PrefillKRowStride(int64_t head_dim) { return head_dim | 1; }

inline PrefillSharedLayout PrefillSharedLayoutFor(int64_t head_dim) {
  PrefillSharedLayout l;
  l.q_offset = kKvTile * 2;  // kKvTile int64s
  l.k_offset = l.q_offset + kPrefillRows * head_dim;
  l.v_offset = l.k_offset + kKvTile * PrefillKRowStride(head_dim);
  l.bytes = (l.v_offset + kKvTile * head_dim) * 4;
  return l;
}

/// The plan of a launch; params already passed Validate() for Device::kCuda (num_tokens > 0).
/// Unimplemented when a grid axis would pass CUDA's limits (65535 along y and z).
inline absl::StatusOr<PagedAttentionPlan> PlanPagedAttention(const PagedAttentionParams& p) {
  PagedAttentionPlan plan;
  plan.group = p.num_heads / p.num_kv_heads;
  plan.head_chunks = (plan.group + kMaxHeadsPerBlock - 1) / kMaxHeadsPerBlock;
  plan.heads_per_block = (plan.group + plan.head_chunks - 1) / plan.head_chunks;
  // The caller's bound picks the path (so a test can force either); no query is longer than
  // the batch, which bounds the grid.
  const int64_t bound = p.max_query_len > 0 ? p.max_query_len : p.num_tokens;
  plan.max_query_len = std::min(bound, p.num_tokens);
  const int64_t head_blocks = p.num_kv_heads * plan.head_chunks;
  if (bound <= kDecodeMaxQueryLen) {
    plan.path = PagedAttentionPlan::Path::kDecode;
    const int64_t max_context = p.max_blocks_per_seq * p.block_size;
    plan.num_partitions = (max_context + kPartitionSize - 1) / kPartitionSize;
    if (plan.num_partitions > 1) {
      plan.workspace_bytes =
          DecodeWorkspaceLayout(p.num_tokens, p.num_heads, plan.num_partitions, p.head_dim).floats *
          4;
    }
    plan.grid_x = p.num_tokens;
    plan.grid_y = head_blocks;
    plan.grid_z = plan.num_partitions;
  } else {
    plan.path = PagedAttentionPlan::Path::kPrefill;
    plan.tile_tokens = std::max<int64_t>(1, kPrefillRows / plan.heads_per_block);
    plan.tile_blocks =
        std::min(kMaxTileBlocks, (plan.max_query_len + plan.tile_tokens - 1) / plan.tile_tokens);
    plan.k_row_stride = PrefillKRowStride(p.head_dim);
    plan.shared_bytes = PrefillSharedLayoutFor(p.head_dim).bytes;
    plan.grid_x = plan.tile_blocks;
    plan.grid_y = p.num_seqs;
    plan.grid_z = head_blocks;
  }
  constexpr int64_t kMaxGridX = (int64_t{1} << 31) - 1;
  constexpr int64_t kMaxGridYZ = 65535;
  if (plan.grid_x > kMaxGridX || plan.grid_y > kMaxGridYZ || plan.grid_z > kMaxGridYZ ||
      p.num_heads > kMaxGridYZ) {
    return absl::UnimplementedError(
        absl::StrCat("paged_attention: the CUDA grid (", plan.grid_x, ", ", plan.grid_y, ", ",
                     plan.grid_z, ") or num_heads=", p.num_heads,
                     " passes CUDA's limits (2^31 - 1 along x, 65535 along y "
                     "and z)"));
  }
  return plan;
}

}  // namespace pagoda::kernels::cuda
