// kernels/cuda/paged_attention.cu against its CPU twin, both device paths on every batch (the
// split-context decode kernel with its combine pass, and the tiled prefill kernel: the plan picks
// one from max_query_len, and the results must not depend on it, so each batch runs once with its
// true bound and once with a bound that forces the other path):
// - decode batches with contexts 1, 17, 511, 512, 513 and 3000 (one to six partitions of 512
//   positions), GQA 1, 2, 4 and 8 query heads per KV head, head_dim 64, 80, 128 and 256, block
//   sizes 16 and 32, fp32 and bf16 caches, block tables wider than the contexts (a CUDA graph's
//   fixed width: partitions past every context), and a short batch of one partition;
// - mixed batches: decodes, an empty query, whole prompts longer than a tile, chunks after a
//   cached prefix (chunked prefill) crossing partitions, groups cut into chunks (12 and 71 heads
//   per KV head), odd head_dim and block size, sliding windows and logit soft-capping;
// - padding entries (seq_len 0, one query token, a block table naming no valid block) give zeros.
// Shuffled blocks; unused cache rows, the query pad and the outputs poisoned with NaN. Bounds,
// relative to 1 + |expected|: 2e-5 for both cache dtypes (the cache holds the same numbers on both
// devices, a bf16 one widened exactly, so the dtype changes only the reads; what differs is fp32
// summation order over up to 3000 positions and 256 dims, expf and tanhf against the CPU's
// polynomial exp and std::tanh). Needs a CUDA device; skips without one (the host-side plan is
// tested on the CPU by tests/kernels/cuda_paged_attention_plan_test.cc).
#include <algorithm>
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cuda/device_memory.h"
#include "kernels/cuda/paged_attention_plan.h"
#include "kernels/paged_attention.h"
#include "tests/gpu/cuda_test_util.h"
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
using testing::DeviceArray;

constexpr float kF32Tolerance = 2e-5f;
constexpr float kBf16Tolerance = 2e-5f;

// Runs the batch on the device with `max_query_len` as the plan's bound, checks that the plan took
// `path`, and compares with the CPU twin's output.
void ExpectDeviceMatches(const Batch& b, const std::vector<float>& expected, int64_t max_query_len,
                         PagedAttentionPlan::Path path) {
  SCOPED_TRACE(::testing::Message()
               << (path == PagedAttentionPlan::Path::kDecode ? "decode" : "prefill")
               << " path, max_query_len=" << max_query_len);
  const bool f32 = b.shape.cache_dtype == DType::kF32;
  DeviceArray<float> dq(b.q), dout(std::vector<float>(expected.size(), kNaN));
  DeviceArray<float> dk_f32(f32 ? b.key_f32 : std::vector<float>{0.0f});
  DeviceArray<float> dv_f32(f32 ? b.value_f32 : std::vector<float>{0.0f});
  DeviceArray<uint16_t> dk_bf16(f32 ? std::vector<uint16_t>{0} : b.key_bf16);
  DeviceArray<uint16_t> dv_bf16(f32 ? std::vector<uint16_t>{0} : b.value_bf16);
  DeviceArray<int32_t> dtables(b.block_tables), dstarts(b.query_start_loc), dlens(b.seq_lens);
  PagedAttentionParams p = attention_testing::BaseParams(b);
  p.out = dout.get();
  p.q = dq.get();
  p.key_cache = f32 ? static_cast<const void*>(dk_f32.get()) : dk_bf16.get();
  p.value_cache = f32 ? static_cast<const void*>(dv_f32.get()) : dv_bf16.get();
  p.block_tables = dtables.get();
  p.query_start_loc = dstarts.get();
  p.seq_lens = dlens.get();
  p.max_query_len = max_query_len;
  p.block_ids_checked = true;
  p.device = Device::kCuda;
  const absl::StatusOr<PagedAttentionPlan> plan = cuda::PlanPagedAttention(p);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->path, path);
  const absl::Status s = PagedAttention(p);
  ASSERT_TRUE(s.ok()) << s;
  const absl::Status synced = cuda::Synchronize();
  ASSERT_TRUE(synced.ok()) << synced;
  attention_testing::ExpectClose(dout.Host(), expected, f32 ? kF32Tolerance : kBf16Tolerance);
}

// Both paths: the decode kernel (a bound <= kDecodeMaxQueryLen; the CUDA twin's results never
// depend on the bound, so 1 forces it even over longer chunks) and the prefill kernel.
void ExpectBothPathsMatch(const Batch& b) {
  const std::vector<float> expected = CpuReference(b);
  ExpectDeviceMatches(b, expected, 1, PagedAttentionPlan::Path::kDecode);
  ExpectDeviceMatches(b, expected, std::max(b.max_query_len, cuda::kDecodeMaxQueryLen + 1),
                      PagedAttentionPlan::Path::kPrefill);
}

struct DecodeCase {
  DType cache_dtype;
  int64_t group;
  int64_t head_dim;
  int64_t block_size;
};

void PrintTo(const DecodeCase& c, std::ostream* os) {
  *os << DTypeName(c.cache_dtype) << " group=" << c.group << " head_dim=" << c.head_dim
      << " block_size=" << c.block_size;
}

class PagedAttentionCudaDecode : public ::testing::TestWithParam<DecodeCase> {};

TEST_P(PagedAttentionCudaDecode, MatchesCpu) {
  if (!testing::HasCudaDevice()) GTEST_SKIP() << "no CUDA device";
  const DecodeCase c = GetParam();
  const Shape shape{c.cache_dtype, 2 * c.group, 2, c.head_dim, c.block_size};
  const uint32_t seed = static_cast<uint32_t>(c.group * 1000 + c.head_dim + c.block_size);
  // Contexts around the 512-position partitions, a padding entry among them, tables 20 blocks
  // wider than the longest context (partitions past every context).
  const std::vector<Seq> seqs = {{1, 1}, {1, 17}, {1, 511}, {1, 0}, {1, 512}, {1, 513}, {1, 3000}};
  {
    SCOPED_TRACE("contexts up to 3000");
    ExpectBothPathsMatch(MakeBatch(shape, seqs, seed, 20));
  }
  // Short contexts in tables of at most 512 positions: one partition, no combine pass.
  SCOPED_TRACE("one partition");
  ExpectBothPathsMatch(
      MakeBatch(shape, {{1, 1}, {1, 0}, {1, 17}, {1, static_cast<int32_t>(512 - c.block_size)}},
                seed + 1, 0));
}

std::vector<DecodeCase> DecodeCases() {
  std::vector<DecodeCase> cases;
  for (DType dtype : {DType::kF32, DType::kBF16}) {
    for (int64_t group : {1, 2, 4, 8}) {
      for (int64_t head_dim : {64, 80, 128, 256}) {
        for (int64_t block_size : {16, 32}) cases.push_back({dtype, group, head_dim, block_size});
      }
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(GqaHeadDimsBlockSizes, PagedAttentionCudaDecode,
                         ::testing::ValuesIn(DecodeCases()),
                         [](const ::testing::TestParamInfo<DecodeCase>& info) {
                           const DecodeCase& c = info.param;
                           return std::string(DTypeName(c.cache_dtype)) + "_group" +
                                  std::to_string(c.group) + "_dim" + std::to_string(c.head_dim) +
                                  "_block" + std::to_string(c.block_size);
                         });

class PagedAttentionCudaMixed : public ::testing::TestWithParam<Shape> {};

TEST_P(PagedAttentionCudaMixed, MatchesCpu) {
  if (!testing::HasCudaDevice()) GTEST_SKIP() << "no CUDA device";
  const Shape shape = GetParam();
  // Decodes, an empty query, whole prompts (7 tokens; 100, more than a tile), chunks after a
  // cached prefix (64 tokens over 636 cached, crossing partitions; 33 over 567; 5 over 255), a
  // long decode and padding entries.
  const std::vector<Seq> seqs = {{1, 37},   {0, 3},    {7, 7},    {3, 20},  {1, 0}, {100, 100},
                                 {64, 700}, {1, 1500}, {33, 600}, {5, 260}, {1, 0}};
  ExpectBothPathsMatch(MakeBatch(
      shape, seqs,
      static_cast<uint32_t>(shape.num_heads * 100 + shape.head_dim + shape.sliding_window), 3));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, PagedAttentionCudaMixed,
    ::testing::Values(
        // GQA 3, head_dim 40 (not a multiple of 32), blocks of 5.
        Shape{DType::kF32, 6, 2, 40, 5}, Shape{DType::kBF16, 8, 1, 80, 16},
        // Groups cut into chunks: 12 heads per KV head (two of 6), 71 (Falcon's MQA: 9 chunks).
        Shape{DType::kF32, 12, 1, 64, 16}, Shape{DType::kBF16, 71, 1, 64, 32},
        Shape{DType::kF32, 4, 4, 256, 32},
        // Sliding windows: Mistral-like across partitions, short ones; Gemma 2's soft-cap.
        Shape{DType::kF32, 8, 2, 128, 16, 300}, Shape{DType::kBF16, 8, 4, 256, 16, 4, 3.0f},
        Shape{DType::kF32, 16, 2, 128, 32, 0, 50.0f}, Shape{DType::kF32, 6, 2, 40, 5, 6}),
    [](const ::testing::TestParamInfo<Shape>& info) {
      const Shape& s = info.param;
      return std::string(DTypeName(s.cache_dtype)) + "_heads" + std::to_string(s.num_heads) +
             "_kv" + std::to_string(s.num_kv_heads) + "_dim" + std::to_string(s.head_dim) +
             "_block" + std::to_string(s.block_size) + "_window" +
             std::to_string(s.sliding_window) + (s.logit_softcap > 0 ? "_softcap" : "");
    });

TEST(PagedAttentionCudaParams, DeviceBlockTablesMustBeCheckedByTheCaller) {
  // Validation only: no device needed.
  float q[4] = {}, out[4], cache[4] = {};
  const int32_t tables[1] = {0}, starts[2] = {0, 1}, lens[1] = {1};
  const absl::Status s = PagedAttention({.out = out,
                                         .q = q,
                                         .key_cache = cache,
                                         .value_cache = cache,
                                         .block_tables = tables,
                                         .query_start_loc = starts,
                                         .seq_lens = lens,
                                         .num_seqs = 1,
                                         .num_tokens = 1,
                                         .num_heads = 1,
                                         .num_kv_heads = 1,
                                         .head_dim = 4,
                                         .block_size = 1,
                                         .num_blocks = 1,
                                         .max_blocks_per_seq = 1,
                                         .q_stride = 4,
                                         .scale = 0.5f,
                                         .device = Device::kCuda});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
}

}  // namespace
}  // namespace pagoda::kernels
