// The CUDA paged attention's launch plan (kernels/cuda/paged_attention_plan.h): host arithmetic
// only, so it runs on every machine, with or without CUDA. The kernels that follow it are
// checked on a device by tests/gpu/paged_attention_cuda_test.cc.
#include <cstdint>

#include "gtest/gtest.h"
#include "kernels/cuda/paged_attention_plan.h"
#include "kernels/paged_attention.h"

namespace pagoda::kernels::cuda {
namespace {

using Path = PagedAttentionPlan::Path;

// A batch's scalars; the plan never reads the arrays, so they stay null.
PagedAttentionParams Params(int64_t num_seqs, int64_t num_tokens, int64_t num_heads,
                            int64_t num_kv_heads, int64_t head_dim, int64_t block_size,
                            int64_t max_blocks_per_seq, int64_t max_query_len) {
  PagedAttentionParams p;
  p.num_seqs = num_seqs;
  p.num_tokens = num_tokens;
  p.num_heads = num_heads;
  p.num_kv_heads = num_kv_heads;
  p.head_dim = head_dim;
  p.block_size = block_size;
  p.num_blocks = 1000;
  p.max_blocks_per_seq = max_blocks_per_seq;
  p.q_stride = num_heads * head_dim;
  p.max_query_len = max_query_len;
  p.device = Device::kCuda;
  return p;
}

PagedAttentionPlan Plan(const PagedAttentionParams& p) {
  absl::StatusOr<PagedAttentionPlan> plan = PlanPagedAttention(p);
  EXPECT_TRUE(plan.ok()) << plan.status();
  return plan.ok() ? *plan : PagedAttentionPlan{};
}

TEST(CudaPagedAttentionPlan, ShortContextDecodeIsOnePartitionWithoutWorkspace) {
  // 64 decodes of Llama-3-8B's shape, contexts up to 32 blocks of 16 = 512 positions.
  const PagedAttentionPlan plan = Plan(Params(64, 64, 32, 8, 128, 16, 32, 1));
  EXPECT_EQ(plan.path, Path::kDecode);
  EXPECT_EQ(plan.group, 4);
  EXPECT_EQ(plan.heads_per_block, 4);
  EXPECT_EQ(plan.head_chunks, 1);
  EXPECT_EQ(plan.num_partitions, 1);
  EXPECT_EQ(plan.workspace_bytes, 0);
  EXPECT_EQ(plan.grid_x, 64);
  EXPECT_EQ(plan.grid_y, 8);
  EXPECT_EQ(plan.grid_z, 1);
}

TEST(CudaPagedAttentionPlan, LongContextDecodeSplitsIntoPartitions) {
  // 8 decodes, tables of 513 blocks of 16 = 8208 positions: ceil(8208 / 512) = 17 partitions.
  const PagedAttentionPlan plan = Plan(Params(8, 8, 32, 8, 128, 16, 513, 1));
  EXPECT_EQ(plan.path, Path::kDecode);
  EXPECT_EQ(plan.num_partitions, 17);
  // Max, sum and 128 floats per (token, head, partition).
  EXPECT_EQ(plan.workspace_bytes, int64_t{8} * 32 * 17 * (2 + 128) * 4);
  EXPECT_EQ(plan.grid_x, 8);
  EXPECT_EQ(plan.grid_y, 8);
  EXPECT_EQ(plan.grid_z, 17);
  const DecodeWorkspace ws = DecodeWorkspaceLayout(8, 32, 17, 128);
  EXPECT_EQ(ws.max_offset, 0);
  EXPECT_EQ(ws.sum_offset, 8 * 32 * 17);
  EXPECT_EQ(ws.acc_offset, 2 * 8 * 32 * 17);
  EXPECT_EQ(ws.floats * 4, plan.workspace_bytes);
}

TEST(CudaPagedAttentionPlan, PartitionBoundaries) {
  // Tables of 511, 512, 513, 1024 and 1025 positions (block size 1): partitions of 512.
  EXPECT_EQ(Plan(Params(1, 1, 4, 4, 64, 1, 1, 1)).num_partitions, 1);
  EXPECT_EQ(Plan(Params(1, 1, 4, 4, 64, 1, 511, 1)).num_partitions, 1);
  EXPECT_EQ(Plan(Params(1, 1, 4, 4, 64, 1, 512, 1)).num_partitions, 1);
  EXPECT_EQ(Plan(Params(1, 1, 4, 4, 64, 1, 513, 1)).num_partitions, 2);
  EXPECT_EQ(Plan(Params(1, 1, 4, 4, 64, 1, 1024, 1)).num_partitions, 2);
  EXPECT_EQ(Plan(Params(1, 1, 4, 4, 64, 1, 1025, 1)).num_partitions, 3);
  EXPECT_EQ(Plan(Params(1, 1, 4, 4, 64, 32, 94, 1)).num_partitions, 6);  // 3008 positions
}

TEST(CudaPagedAttentionPlan, LargeGroupsAreCutIntoNearlyEqualChunks) {
  // 12 query heads per KV head: two chunks of 6, not 8 and 4.
  PagedAttentionPlan plan = Plan(Params(2, 2, 24, 2, 64, 16, 4, 1));
  EXPECT_EQ(plan.group, 12);
  EXPECT_EQ(plan.head_chunks, 2);
  EXPECT_EQ(plan.heads_per_block, 6);
  EXPECT_EQ(plan.grid_y, 4);  // 2 KV heads x 2 chunks
  // Multi-query attention with 71 heads (Falcon-7B): 9 chunks of at most 8.
  plan = Plan(Params(1, 1, 71, 1, 64, 16, 4, 1));
  EXPECT_EQ(plan.head_chunks, 9);
  EXPECT_EQ(plan.heads_per_block, 8);
  EXPECT_LT(plan.heads_per_block * (plan.head_chunks - 1), 71);  // the last chunk has 7
  EXPECT_GE(plan.heads_per_block * plan.head_chunks, 71);
  // Up to 8 per KV head: one chunk.
  for (int64_t group : {1, 2, 4, 8}) {
    plan = Plan(Params(1, 1, 2 * group, 2, 64, 16, 4, 1));
    EXPECT_EQ(plan.head_chunks, 1) << group;
    EXPECT_EQ(plan.heads_per_block, group) << group;
  }
}

TEST(CudaPagedAttentionPlan, QueryLengthPicksThePath) {
  // Query chunks up to kDecodeMaxQueryLen tokens: decode; longer: prefill.
  EXPECT_EQ(Plan(Params(4, 4 * kDecodeMaxQueryLen, 8, 2, 64, 16, 8, kDecodeMaxQueryLen)).path,
            Path::kDecode);
  EXPECT_EQ(Plan(Params(4, 40, 8, 2, 64, 16, 8, kDecodeMaxQueryLen + 1)).path, Path::kPrefill);
  // Unknown (0): num_tokens bounds every query, so 64 tokens go to prefill, 8 to decode.
  EXPECT_EQ(Plan(Params(64, 64, 8, 2, 64, 16, 8, 0)).path, Path::kPrefill);
  EXPECT_EQ(Plan(Params(8, 8, 8, 2, 64, 16, 8, 0)).max_query_len, 8);
  EXPECT_EQ(Plan(Params(8, 8, 8, 2, 64, 16, 8, 0)).path, Path::kDecode);
  // A bound above num_tokens still picks the path, but the grid is cut to num_tokens.
  const PagedAttentionPlan plan = Plan(Params(1, 3, 8, 2, 64, 16, 8, 5000));
  EXPECT_EQ(plan.path, Path::kPrefill);
  EXPECT_EQ(plan.max_query_len, 3);
  EXPECT_EQ(plan.tile_blocks, 1);
}

TEST(CudaPagedAttentionPlan, PrefillTilesAndGrid) {
  // A 1000-token chunk and a decode, GQA 4: tiles of 32 / 4 = 8 tokens, ceil(1000 / 8) = 125
  // tiles, over at most 32 blocks per sequence; 2 sequences, 8 KV heads.
  PagedAttentionPlan plan = Plan(Params(2, 1001, 32, 8, 128, 16, 64, 1000));
  EXPECT_EQ(plan.path, Path::kPrefill);
  EXPECT_EQ(plan.tile_tokens, 8);
  EXPECT_EQ(plan.tile_blocks, kMaxTileBlocks);
  EXPECT_EQ(plan.grid_x, kMaxTileBlocks);
  EXPECT_EQ(plan.grid_y, 2);
  EXPECT_EQ(plan.grid_z, 8);
  EXPECT_EQ(plan.workspace_bytes, 0);
  // No GQA: 32 tokens per tile; a 33-token chunk is two tiles.
  plan = Plan(Params(1, 33, 4, 4, 64, 16, 4, 33));
  EXPECT_EQ(plan.tile_tokens, 32);
  EXPECT_EQ(plan.tile_blocks, 2);
  // Groups of 6 (after cutting 12): 5 tokens per tile, 30 rows.
  plan = Plan(Params(1, 100, 24, 2, 64, 16, 8, 100));
  EXPECT_EQ(plan.heads_per_block, 6);
  EXPECT_EQ(plan.tile_tokens, 5);
  EXPECT_EQ(plan.tile_blocks, 20);
  EXPECT_EQ(plan.grid_z, 4);
  // 256 tokens in tiles of 8: 32 tiles, one block each; 264: 33 tiles over 32 blocks.
  EXPECT_EQ(Plan(Params(1, 256, 32, 8, 128, 16, 16, 256)).tile_blocks, 32);
  EXPECT_EQ(Plan(Params(1, 264, 32, 8, 128, 16, 17, 264)).tile_blocks, 32);
}

TEST(CudaPagedAttentionPlan, PrefillSharedMemory) {
  // int64 row offsets, then q [32, d], K [32, d | 1], V [32, d], in floats.
  for (int64_t dim : {40, 64, 80, 128, 256}) {
    const PrefillSharedLayout l = PrefillSharedLayoutFor(dim);
    EXPECT_EQ(l.q_offset, 2 * kKvTile) << dim;
    EXPECT_EQ(l.k_offset - l.q_offset, kPrefillRows * dim) << dim;
    EXPECT_EQ(l.v_offset - l.k_offset, kKvTile * (dim | 1)) << dim;
    EXPECT_EQ(l.bytes, 8 * kKvTile + 4 * (kPrefillRows * dim + kKvTile * (dim | 1) + kKvTile * dim))
        << dim;
    EXPECT_EQ(PrefillKRowStride(dim) % 2, 1) << dim;
    EXPECT_EQ(Plan(Params(1, 100, 4, 4, dim, 16, 8, 100)).shared_bytes, l.bytes) << dim;
  }
  // Above the 48 KiB default from head_dim 128 on (the launch opts in), within an H100's 227 KiB.
  EXPECT_LT(PrefillSharedLayoutFor(64).bytes, kDefaultSharedBytes);
  EXPECT_GT(PrefillSharedLayoutFor(128).bytes, kDefaultSharedBytes);
  EXPECT_LT(PrefillSharedLayoutFor(kMaxHeadDim).bytes, 227 * 1024);
}

TEST(CudaPagedAttentionPlan, GridLimitsAreUnimplemented) {
  // 70000 KV heads' blocks along y in decode.
  absl::StatusOr<PagedAttentionPlan> plan =
      PlanPagedAttention(Params(1, 1, 70000, 70000, 64, 16, 4, 1));
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kUnimplemented) << plan.status();
  // 70000 sequences along y in prefill.
  plan = PlanPagedAttention(Params(70000, 70000 * 10, 4, 4, 64, 16, 4, 10));
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kUnimplemented) << plan.status();
  // 70000 partitions along z.
  plan = PlanPagedAttention(Params(1, 1, 4, 4, 64, 512, 70000, 1));
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kUnimplemented) << plan.status();
}

}  // namespace
}  // namespace pagoda::kernels::cuda
