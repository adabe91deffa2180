// kernels/cuda/paged_attention.cu against its CPU twin: a mixed batch (a decode, an empty query,
// a whole prompt, a chunk after a cached prefix) over shuffled blocks, GQA, head dims that are
// and are not multiples of 32, fp32 and bf16 caches; unused cache rows and the output poisoned
// with NaN. fp32 bound: 1e-5 relative (softmax sums in another order and expf against the CPU's
// exp). Needs a CUDA device; skips without one.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cuda/device_memory.h"
#include "kernels/paged_attention.h"
#include "tests/gpu/cuda_test_util.h"

namespace pagoda::kernels {
namespace {

using testing::DeviceArray;
using testing::kNaN;

struct Case {
  DType cache_dtype;
  int64_t head_dim;
  int64_t sliding_window = 0;
  float logit_softcap = 0.0f;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << DTypeName(c.cache_dtype) << " head_dim=" << c.head_dim
      << " sliding_window=" << c.sliding_window << " logit_softcap=" << c.logit_softcap;
}

class PagedAttentionCuda : public ::testing::TestWithParam<Case> {};

TEST_P(PagedAttentionCuda, MixedBatchMatchesCpu) {
  if (!testing::HasCudaDevice()) GTEST_SKIP() << "no CUDA device";
  const Case c = GetParam();
  constexpr int64_t kHeads = 6;
  constexpr int64_t kKvHeads = 2;
  constexpr int64_t kBlockSize = 5;
  constexpr int64_t kMaxBlocks = 9;
  // (q_len, seq_len) per sequence.
  const std::vector<std::pair<int32_t, int32_t>> seqs = {{1, 37}, {0, 3}, {7, 7}, {3, 20}};
  const int64_t num_seqs = static_cast<int64_t>(seqs.size());
  const int64_t num_blocks = num_seqs * kMaxBlocks + 3;
  const int64_t row = kKvHeads * c.head_dim;
  std::mt19937 rng(static_cast<uint32_t>(c.head_dim) + (c.cache_dtype == DType::kBF16));

  // Shuffled physical blocks, handed out to the sequences' tables in order.
  std::vector<int32_t> free_blocks(num_blocks);
  std::iota(free_blocks.begin(), free_blocks.end(), 0);
  std::shuffle(free_blocks.begin(), free_blocks.end(), rng);
  std::vector<int32_t> block_tables(num_seqs * kMaxBlocks, -1);
  std::vector<int32_t> query_start_loc = {0};
  std::vector<int32_t> seq_lens;
  // The caches in 32-bit words (a bf16 cache uses the first half of the bytes), NaN everywhere a
  // sequence has no token.
  const int64_t cache_elements = num_blocks * kBlockSize * row;
  std::vector<float> key_cache(cache_elements, kNaN), value_cache(cache_elements, kNaN);
  auto* key_bf16 = reinterpret_cast<uint16_t*>(key_cache.data());
  auto* value_bf16 = reinterpret_cast<uint16_t*>(value_cache.data());
  std::uniform_real_distribution<float> uniform(-2.0f, 2.0f);
  std::uniform_int_distribution<int> bf16_bits(0x3c00, 0x4040);  // about [0.008, 3]
  size_t next_block = 0;
  for (int64_t s = 0; s < num_seqs; ++s) {
    const auto [q_len, seq_len] = seqs[s];
    query_start_loc.push_back(query_start_loc.back() + q_len);
    seq_lens.push_back(seq_len);
    for (int64_t b = 0; b * kBlockSize < seq_len; ++b) {
      block_tables[s * kMaxBlocks + b] = free_blocks[next_block++];
    }
    for (int64_t p = 0; p < seq_len; ++p) {
      const int64_t slot =
          int64_t{block_tables[s * kMaxBlocks + p / kBlockSize]} * kBlockSize + p % kBlockSize;
      for (int64_t i = 0; i < row; ++i) {
        if (c.cache_dtype == DType::kF32) {
          key_cache[slot * row + i] = uniform(rng);
          value_cache[slot * row + i] = uniform(rng);
        } else {
          const uint16_t sign_k = rng() & 1 ? 0x8000 : 0, sign_v = rng() & 1 ? 0x8000 : 0;
          key_bf16[slot * row + i] = static_cast<uint16_t>(bf16_bits(rng) | sign_k);
          value_bf16[slot * row + i] = static_cast<uint16_t>(bf16_bits(rng) | sign_v);
        }
      }
    }
  }
  const int64_t num_tokens = query_start_loc.back();
  const int64_t q_stride = kHeads * c.head_dim + 1;  // one pad float per token
  std::vector<float> q = testing::RandomFloats(num_tokens * q_stride, rng, -2.0f, 2.0f);

  PagedAttentionParams params{.q = q.data(),
                              .key_cache = key_cache.data(),
                              .value_cache = value_cache.data(),
                              .cache_dtype = c.cache_dtype,
                              .block_tables = block_tables.data(),
                              .query_start_loc = query_start_loc.data(),
                              .seq_lens = seq_lens.data(),
                              .num_seqs = num_seqs,
                              .num_tokens = num_tokens,
                              .num_heads = kHeads,
                              .num_kv_heads = kKvHeads,
                              .head_dim = c.head_dim,
                              .block_size = kBlockSize,
                              .num_blocks = num_blocks,
                              .max_blocks_per_seq = kMaxBlocks,
                              .q_stride = q_stride,
                              .scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim)),
                              .sliding_window = c.sliding_window,
                              .logit_softcap = c.logit_softcap};
  std::vector<float> expected(num_tokens * kHeads * c.head_dim, kNaN);
  params.out = expected.data();
  ASSERT_TRUE(PagedAttention(params).ok());

  DeviceArray<float> dq(q), dk(key_cache), dv(value_cache);
  DeviceArray<float> dout(std::vector<float>(expected.size(), kNaN));
  DeviceArray<int32_t> dtables(block_tables), dstarts(query_start_loc), dlens(seq_lens);
  params.out = dout.get();
  params.q = dq.get();
  params.key_cache = dk.get();
  params.value_cache = dv.get();
  params.block_tables = dtables.get();
  params.query_start_loc = dstarts.get();
  params.seq_lens = dlens.get();
  params.block_ids_checked = true;
  params.device = Device::kCuda;
  const absl::Status s = PagedAttention(params);
  ASSERT_TRUE(s.ok()) << s;
  ASSERT_TRUE(cuda::Synchronize().ok());
  testing::ExpectClose(dout.Host(), expected, 1e-5f);
}

INSTANTIATE_TEST_SUITE_P(CachesAndHeadDims, PagedAttentionCuda,
                         ::testing::Values(Case{DType::kF32, 40}, Case{DType::kF32, 128},
                                           Case{DType::kBF16, 64}, Case{DType::kBF16, 256},
                                           // Mistral's window; Gemma 2's window and soft-cap.
                                           Case{DType::kF32, 40, 6},
                                           Case{DType::kBF16, 64, 4, 3.0f}),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return std::string(DTypeName(info.param.cache_dtype)) + "_dim" +
                                  std::to_string(info.param.head_dim) + "_window" +
                                  std::to_string(info.param.sliding_window) +
                                  (info.param.logit_softcap > 0 ? "_softcap" : "");
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
