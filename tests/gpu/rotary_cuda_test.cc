// kernels/cuda/rotary.cu against its CPU twin: both pair layouts, plain and llama3-scaled
// tables, GQA head counts, odd token counts and padded rows (the padding poisoned with NaN must
// stay untouched). fp32 bound: 2e-6 relative (a * cos - b * sin may be fused differently).
// Needs a CUDA device; skips without one.
#include <cmath>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cuda/device_memory.h"
#include "kernels/rotary.h"
#include "tests/gpu/cuda_test_util.h"

namespace pagoda::kernels {
namespace {

using testing::DeviceArray;
using testing::kNaN;

struct Case {
  RotaryStyle style;
  bool llama3;
  int64_t head_dim;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << (c.style == RotaryStyle::kInterleaved ? "interleaved" : "rotate_half")
      << (c.llama3 ? " llama3" : "") << " head_dim=" << c.head_dim;
}

class RotaryCuda : public ::testing::TestWithParam<Case> {};

TEST_P(RotaryCuda, MatchesCpu) {
  if (!testing::HasCudaDevice()) GTEST_SKIP() << "no CUDA device";
  const Case c = GetParam();
  constexpr int64_t kTokens = 11;
  constexpr int64_t kHeads = 9;
  constexpr int64_t kKvHeads = 3;
  constexpr int64_t kMaxPositions = 8193;
  RopeConfig config{.head_dim = c.head_dim, .max_positions = kMaxPositions, .theta = 500000.0};
  if (c.llama3) {
    config.llama3 = {.factor = 8.0,
                     .low_freq_factor = 1.0,
                     .high_freq_factor = 4.0,
                     .original_max_position_embeddings = 8192};
  }
  absl::StatusOr<RopeCache> cache = BuildRopeCache(config);
  ASSERT_TRUE(cache.ok()) << cache.status();

  // Rows padded by 3 floats past the heads; the padding is NaN and must stay so.
  const int64_t q_stride = kHeads * c.head_dim + 3;
  const int64_t k_stride = kKvHeads * c.head_dim + 3;
  std::mt19937 rng(static_cast<uint32_t>(c.head_dim * 4 + c.llama3 * 2 +
                                         (c.style == RotaryStyle::kInterleaved)));
  std::vector<float> q = testing::RandomFloats(kTokens * q_stride, rng);
  std::vector<float> k = testing::RandomFloats(kTokens * k_stride, rng);
  for (int64_t t = 0; t < kTokens; ++t) {
    for (int64_t i = 0; i < 3; ++i) {
      q[t * q_stride + kHeads * c.head_dim + i] = kNaN;
      k[t * k_stride + kKvHeads * c.head_dim + i] = kNaN;
    }
  }
  std::vector<int32_t> positions(kTokens);
  std::uniform_int_distribution<int32_t> pos(0, kMaxPositions - 1);
  for (int32_t& p : positions) p = pos(rng);
  positions[0] = 0;
  positions[1] = kMaxPositions - 1;

  std::vector<float> expected_q = q;
  std::vector<float> expected_k = k;
  ASSERT_TRUE(ApplyRotary({.q = expected_q.data(),
                           .k = expected_k.data(),
                           .positions = positions.data(),
                           .cache = &*cache,
                           .num_tokens = kTokens,
                           .num_heads = kHeads,
                           .num_kv_heads = kKvHeads,
                           .head_dim = c.head_dim,
                           .q_stride = q_stride,
                           .k_stride = k_stride,
                           .style = c.style})
                  .ok());

  DeviceArray<float> dq(q), dk(k), dtable(cache->cos_sin);
  DeviceArray<int32_t> dpos(positions);
  const absl::Status s = ApplyRotary({.q = dq.get(),
                                      .k = dk.get(),
                                      .positions = dpos.get(),
                                      .cache = &*cache,
                                      .num_tokens = kTokens,
                                      .num_heads = kHeads,
                                      .num_kv_heads = kKvHeads,
                                      .head_dim = c.head_dim,
                                      .q_stride = q_stride,
                                      .k_stride = k_stride,
                                      .style = c.style,
                                      .device = Device::kCuda,
                                      .device_cos_sin = dtable.get()});
  ASSERT_TRUE(s.ok()) << s;
  ASSERT_TRUE(cuda::Synchronize().ok());
  const std::vector<float> got_q = dq.Host();
  const std::vector<float> got_k = dk.Host();
  // Compare the heads; the padding must still be NaN on both.
  for (int64_t t = 0; t < kTokens; ++t) {
    for (int64_t i = 0; i < 3; ++i) {
      EXPECT_TRUE(std::isnan(got_q[t * q_stride + kHeads * c.head_dim + i]));
      EXPECT_TRUE(std::isnan(got_k[t * k_stride + kKvHeads * c.head_dim + i]));
    }
  }
  auto heads = [](const std::vector<float>& v, int64_t stride, int64_t width) {
    std::vector<float> out;
    for (int64_t t = 0; t < kTokens; ++t) {
      out.insert(out.end(), v.begin() + t * stride, v.begin() + t * stride + width);
    }
    return out;
  };
  testing::ExpectClose(heads(got_q, q_stride, kHeads * c.head_dim),
                       heads(expected_q, q_stride, kHeads * c.head_dim), 2e-6f);
  testing::ExpectClose(heads(got_k, k_stride, kKvHeads * c.head_dim),
                       heads(expected_k, k_stride, kKvHeads * c.head_dim), 2e-6f);
}

INSTANTIATE_TEST_SUITE_P(Layouts, RotaryCuda,
                         ::testing::Values(Case{RotaryStyle::kRotateHalf, false, 64},
                                           Case{RotaryStyle::kRotateHalf, true, 130},
                                           Case{RotaryStyle::kInterleaved, false, 6},
                                           Case{RotaryStyle::kInterleaved, true, 600}),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return std::string(info.param.style == RotaryStyle::kInterleaved
                                                  ? "Interleaved"
                                                  : "RotateHalf") +
                                  (info.param.llama3 ? "Llama3" : "") + "_dim" +
                                  std::to_string(info.param.head_dim);
                         });

TEST(RotaryCudaParams, DeviceTableIsRequired) {
  // Validation only: no device needed.
  absl::StatusOr<RopeCache> cache = BuildRopeCache({.head_dim = 4, .max_positions = 2});
  ASSERT_TRUE(cache.ok());
  float q[4], k[4];
  const int32_t positions[1] = {0};
  const absl::Status s = ApplyRotary({.q = q,
                                      .k = k,
                                      .positions = positions,
                                      .cache = &*cache,
                                      .num_tokens = 1,
                                      .num_heads = 1,
                                      .num_kv_heads = 1,
                                      .head_dim = 4,
                                      .q_stride = 4,
                                      .k_stride = 4,
                                      .device = Device::kCuda});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
}

}  // namespace
}  // namespace pagoda::kernels
