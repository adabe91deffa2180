// The CUDA paged-attention kernels (kernels/cuda/internal/paged_attention_kernels.cuh) run on the
// CPU through tests/kernels/cuda_emulation.h, against the CPU twin, where no device is: their
// indexing, masks, partition and tile arithmetic, barriers (a divergent one aborts) and shuffles
// are checked on every machine. The launch sequence is kernels/cuda/paged_attention.cu's
// (plan, arguments, decode then combine, or prefill), with host memory; the decode workspace is
// poisoned with NaN, so the combine reading a partition no block wrote fails. Both paths run on
// every batch (results must not depend on max_query_len). Small shapes: each CUDA thread is a
// fiber, so a batch costs seconds. The device itself (fp32 rounding on the GPU, expf, shared
// memory limits, timing) is tests/gpu/paged_attention_cuda_test.cc's. Bound: 1e-5 relative to
// 1 + |expected| (host float arithmetic on both sides, in another order; std::exp against the
// CPU twin's polynomial exp).
// The emulation first: it defines the CUDA keywords the kernels' header uses.
// clang-format off
#include "tests/kernels/cuda_emulation.h"
#include "kernels/cuda/internal/paged_attention_kernels.cuh"
// clang-format on

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cuda/paged_attention_plan.h"
#include "kernels/paged_attention.h"
#include "tests/kernels/paged_attention_batches.h"

namespace pagoda::kernels {
namespace {

using attention_testing::Batch;
using attention_testing::CpuReference;
using attention_testing::kNaN;
using attention_testing::MakeBatch;
using attention_testing::Seq;
using attention_testing::Shape;
using cuda::PagedAttentionPlan;

constexpr float kTolerance = 1e-5f;

// kernels/cuda/paged_attention.cu's Launch, on the emulator. `grid_x` > 0 replaces the plan's
// first grid dimension (prefill: one block then strides over all of a sequence's tiles).
template <typename Cache>
void EmulatedLaunch(const PagedAttentionParams& p, const PagedAttentionPlan& plan,
                    int64_t grid_x = 0) {
  const cuda::internal::Args<Cache> args = cuda::internal::MakeArgs<Cache>(p, plan);
  const dim3 grid(static_cast<unsigned int>(grid_x > 0 ? grid_x : plan.grid_x),
                  static_cast<unsigned int>(plan.grid_y), static_cast<unsigned int>(plan.grid_z));
  if (plan.path == PagedAttentionPlan::Path::kPrefill) {
    const cuda::PrefillSharedLayout layout = cuda::PrefillSharedLayoutFor(p.head_dim);
    cuda_emulation::Launch(grid, cuda::kPrefillThreads, static_cast<size_t>(layout.bytes),
                           cuda::internal::PrefillKernel<Cache>, args, plan.tile_tokens,
                           plan.k_row_stride, layout);
    return;
  }
  std::vector<float> workspace(static_cast<size_t>(plan.workspace_bytes / 4) + 1, kNaN);
  cuda::DecodeWorkspace ws;
  if (plan.num_partitions > 1) {
    ws = cuda::DecodeWorkspaceLayout(p.num_tokens, p.num_heads, plan.num_partitions, p.head_dim);
  }
  cuda_emulation::Launch(grid, cuda::kDecodeThreads, 0, cuda::internal::DecodeKernel<Cache>, args,
                         plan.num_partitions, workspace.data(), ws);
  if (plan.num_partitions == 1) return;
  cuda_emulation::Launch(
      dim3(static_cast<unsigned int>(p.num_tokens), static_cast<unsigned int>(p.num_heads)),
      cuda::kCombineThreads, 0, cuda::internal::CombineKernel, p.out,
      static_cast<const float*>(workspace.data()), ws, p.query_start_loc, p.seq_lens, p.num_seqs,
      p.num_heads, p.head_dim, plan.num_partitions, p.sliding_window);
}

// Runs the batch on the emulator with `max_query_len` as the plan's bound, checks the plan took
// `path`, and compares with the CPU twin.
void ExpectEmulatedMatches(const Batch& b, const std::vector<float>& expected,
                           int64_t max_query_len, PagedAttentionPlan::Path path) {
  SCOPED_TRACE(::testing::Message()
               << (path == PagedAttentionPlan::Path::kDecode ? "decode" : "prefill")
               << " path, max_query_len=" << max_query_len);
  std::vector<float> out(expected.size(), kNaN);
  PagedAttentionParams p = attention_testing::HostParams(b, out.data());
  p.max_query_len = max_query_len;
  p.block_ids_checked = true;
  p.device = Device::kCuda;
  ASSERT_TRUE(p.Validate().ok());
  const absl::StatusOr<PagedAttentionPlan> plan = cuda::PlanPagedAttention(p);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->path, path);
  if (p.cache_dtype == DType::kF32) {
    EmulatedLaunch<cuda::internal::F32Cache>(p, *plan);
  } else {
    EmulatedLaunch<cuda::internal::Bf16Cache>(p, *plan);
  }
  attention_testing::ExpectClose(out, expected, kTolerance);
  if (path != PagedAttentionPlan::Path::kPrefill || plan->tile_blocks == 1) return;
  // One block per sequence striding over all its tiles (as past kMaxTileBlocks tiles).
  SCOPED_TRACE("one block per sequence");
  std::fill(out.begin(), out.end(), kNaN);
  if (p.cache_dtype == DType::kF32) {
    EmulatedLaunch<cuda::internal::F32Cache>(p, *plan, 1);
  } else {
    EmulatedLaunch<cuda::internal::Bf16Cache>(p, *plan, 1);
  }
  attention_testing::ExpectClose(out, expected, kTolerance);
}

void ExpectBothPathsMatch(const Batch& b) {
  const std::vector<float> expected = CpuReference(b);
  ExpectEmulatedMatches(b, expected, 1, PagedAttentionPlan::Path::kDecode);
  ExpectEmulatedMatches(b, expected, std::max(b.max_query_len, cuda::kDecodeMaxQueryLen + 1),
                        PagedAttentionPlan::Path::kPrefill);
}

TEST(CudaPagedAttentionEmulated, DecodeAcrossPartitions) {
  // GQA 3, head_dim 40, contexts in one to three partitions, a padding entry, tables 4 blocks
  // wider than the longest context (a partition past every context).
  ExpectBothPathsMatch(MakeBatch({DType::kF32, 6, 2, 40, 16},
                                 {{1, 1}, {1, 17}, {1, 0}, {1, 512}, {1, 513}, {1, 1030}}, 1, 4));
}

TEST(CudaPagedAttentionEmulated, DecodeOnePartition) {
  ExpectBothPathsMatch(
      MakeBatch({DType::kBF16, 8, 1, 64, 16}, {{1, 1}, {1, 0}, {1, 17}, {1, 500}}, 2));
}

TEST(CudaPagedAttentionEmulated, DecodeWindowAndSoftCapBf16) {
  // A window of 100 across partitions; Gemma 2's soft-cap.
  ExpectBothPathsMatch(MakeBatch({DType::kBF16, 8, 1, 64, 16, 100, 3.0f},
                                 {{1, 50}, {1, 300}, {1, 0}, {1, 600}}, 3, 2));
}

TEST(CudaPagedAttentionEmulated, HeadDim256) {
  // Every lane's 8 dims, the decode and combine threads' second dim; two partitions, a prompt.
  ExpectBothPathsMatch(
      MakeBatch({DType::kF32, 4, 2, 256, 32}, {{1, 1}, {1, 0}, {1, 600}, {9, 40}}, 7));
}

TEST(CudaPagedAttentionEmulated, GroupsCutIntoChunks) {
  // 12 query heads per KV head: two chunks of 6; 5 tokens per prefill tile (30 of 32 rows).
  ExpectBothPathsMatch(
      MakeBatch({DType::kF32, 12, 1, 32, 8}, {{1, 40}, {12, 12}, {3, 600}, {1, 0}}, 4));
}

TEST(CudaPagedAttentionEmulated, MixedBatch) {
  // Decodes, an empty query, whole prompts (7 tokens; 40, more than a tile), a chunk after a
  // cached prefix crossing a partition, padding; head_dim 40, blocks of 5.
  ExpectBothPathsMatch(MakeBatch({DType::kF32, 6, 2, 40, 5},
                                 {{1, 37}, {0, 3}, {7, 7}, {3, 20}, {1, 0}, {40, 40}, {12, 520}},
                                 5));
}

TEST(CudaPagedAttentionEmulated, MixedBatchSlidingWindow) {
  ExpectBothPathsMatch(
      MakeBatch({DType::kBF16, 4, 2, 80, 16, 6}, {{1, 37}, {9, 9}, {1, 0}, {20, 100}, {5, 30}}, 6));
}

}  // namespace
}  // namespace pagoda::kernels
