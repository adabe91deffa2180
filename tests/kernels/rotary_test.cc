#include "kernels/rotary.h"

#include <cmath>
#include <limits>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagoda::kernels {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kDim = 10;  // half = 5: no vector width divides it
constexpr int64_t kMaxPositions = 50;
constexpr int64_t kTokens = 7;
constexpr int64_t kHeads = 3;
constexpr int64_t kKvHeads = 1;
// q, k and v of a token side by side, as a fused QKV projection leaves them.
constexpr int64_t kStride = (kHeads + 2 * kKvHeads) * kDim;

double InvFreq(int64_t i, int64_t dim, double theta) {
  return 1.0 / std::pow(theta, static_cast<double>(2 * i) / static_cast<double>(dim));
}

TEST(BuildRopeCache, TableHoldsCosThenSinOfPositionTimesFrequency) {
  absl::StatusOr<RopeCache> cache =
      BuildRopeCache({.head_dim = kDim, .max_positions = kMaxPositions, .theta = 10000.0});
  ASSERT_TRUE(cache.ok()) << cache.status();
  ASSERT_EQ(cache->cos_sin.size(), static_cast<size_t>(kMaxPositions * kDim));
  for (int64_t pos = 0; pos < kMaxPositions; ++pos) {
    for (int64_t i = 0; i < kDim / 2; ++i) {
      const double angle = pos * InvFreq(i, kDim, 10000.0);
      EXPECT_NEAR(cache->cos_sin[pos * kDim + i], std::cos(angle), 1e-7);
      EXPECT_NEAR(cache->cos_sin[pos * kDim + kDim / 2 + i], std::sin(angle), 1e-7);
    }
  }
}

// transformers' _compute_linear_scaling_rope_parameters (Gemma 3's global layers): every
// frequency divided by the factor, i.e. position p is rotated as p / factor.
TEST(BuildRopeCache, LinearScalingDividesEveryFrequency) {
  absl::StatusOr<RopeCache> cache = BuildRopeCache(
      {.head_dim = kDim, .max_positions = kMaxPositions, .theta = 1e6, .linear_factor = 8.0});
  ASSERT_TRUE(cache.ok()) << cache.status();
  for (int64_t pos = 0; pos < kMaxPositions; ++pos) {
    for (int64_t i = 0; i < kDim / 2; ++i) {
      const double angle = pos * InvFreq(i, kDim, 1e6) / 8.0;
      EXPECT_NEAR(cache->cos_sin[pos * kDim + i], std::cos(angle), 1e-7);
      EXPECT_NEAR(cache->cos_sin[pos * kDim + kDim / 2 + i], std::sin(angle), 1e-7);
    }
  }
  EXPECT_EQ(
      BuildRopeCache({.head_dim = 8, .max_positions = 4, .linear_factor = -1.0}).status().code(),
      absl::StatusCode::kInvalidArgument);
}

// transformers' _compute_llama3_parameters, written as there: three candidate frequencies and a
// selection per element.
std::vector<double> Llama3Reference(int64_t dim, double theta, const Llama3RopeScaling& s, int* low,
                                    int* medium, int* high) {
  std::vector<double> out;
  const double old_context_len = static_cast<double>(s.original_max_position_embeddings);
  const double low_freq_wavelen = old_context_len / s.low_freq_factor;
  const double high_freq_wavelen = old_context_len / s.high_freq_factor;
  for (int64_t i = 0; i < dim / 2; ++i) {
    const double inv_freq = InvFreq(i, dim, theta);
    const double wavelen = 2 * std::numbers::pi / inv_freq;
    double inv_freq_llama = wavelen > low_freq_wavelen ? inv_freq / s.factor : inv_freq;
    const double smooth_factor =
        (old_context_len / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
    const double smoothed =
        (1 - smooth_factor) * inv_freq_llama / s.factor + smooth_factor * inv_freq_llama;
    const bool is_medium = !(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen);
    if (is_medium) inv_freq_llama = smoothed;
    ++*(is_medium ? medium : (wavelen > low_freq_wavelen ? low : high));
    out.push_back(inv_freq_llama);
  }
  return out;
}

TEST(BuildRopeCache, Llama3ScalingMatchesTransformers) {
  // LLaMA 3.1's rope_scaling.
  const Llama3RopeScaling scaling{.factor = 8.0,
                                  .low_freq_factor = 1.0,
                                  .high_freq_factor = 4.0,
                                  .original_max_position_embeddings = 8192};
  constexpr int64_t kHeadDim = 128;
  constexpr double kTheta = 500000.0;
  absl::StatusOr<RopeCache> cache = BuildRopeCache(
      {.head_dim = kHeadDim, .max_positions = 20000, .theta = kTheta, .llama3 = scaling});
  ASSERT_TRUE(cache.ok()) << cache.status();
  int low = 0, medium = 0, high = 0;
  const std::vector<double> inv_freq =
      Llama3Reference(kHeadDim, kTheta, scaling, &low, &medium, &high);
  // All three regimes occur at this shape.
  EXPECT_GT(low, 0);
  EXPECT_GT(medium, 0);
  EXPECT_GT(high, 0);
  for (int64_t pos : {0, 1, 17, 4095, 8191, 19999}) {
    for (int64_t i = 0; i < kHeadDim / 2; ++i) {
      const double angle = static_cast<double>(pos) * inv_freq[i];
      EXPECT_NEAR(cache->cos_sin[pos * kHeadDim + i], std::cos(angle), 1e-6) << pos << " " << i;
      EXPECT_NEAR(cache->cos_sin[pos * kHeadDim + kHeadDim / 2 + i], std::sin(angle), 1e-6)
          << pos << " " << i;
    }
  }
}

// transformers' _compute_longrope_parameters: inv_freq = 1 / (ext_factors * theta^(2i/dim)),
// and cos and sin both multiplied by the attention factor.
TEST(BuildRopeCache, LongRopeFactorsAndAttentionFactorMatchTransformers) {
  constexpr int64_t kRotaryDim = 12;
  const std::vector<double> factors = {1.0, 1.5, 2.25, 3.0, 7.5, 40.0};
  const double attention_factor = std::sqrt(1 + std::log(32.0) / std::log(64.0));
  absl::StatusOr<RopeCache> cache = BuildRopeCache({.head_dim = kRotaryDim,
                                                    .max_positions = 2048,
                                                    .theta = 10000.0,
                                                    .freq_factors = factors,
                                                    .attention_factor = attention_factor});
  ASSERT_TRUE(cache.ok()) << cache.status();
  for (int64_t pos : {0, 1, 63, 64, 2047}) {
    for (int64_t i = 0; i < kRotaryDim / 2; ++i) {
      const double angle =
          pos / (factors[i] * std::pow(10000.0, static_cast<double>(2 * i) / kRotaryDim));
      EXPECT_NEAR(cache->cos_sin[pos * kRotaryDim + i], attention_factor * std::cos(angle), 1e-6)
          << pos << " " << i;
      EXPECT_NEAR(cache->cos_sin[pos * kRotaryDim + kRotaryDim / 2 + i],
                  attention_factor * std::sin(angle), 1e-6)
          << pos << " " << i;
    }
  }
}

TEST(BuildRopeCache, RejectsBadConfig) {
  EXPECT_THAT(
      std::string(BuildRopeCache({.head_dim = 8, .max_positions = 4, .freq_factors = {1, 2, 3}})
                      .status()
                      .message()),
      HasSubstr("3 frequency factors for head_dim 8; expected head_dim / 2 = 4"));
  EXPECT_THAT(
      std::string(BuildRopeCache({.head_dim = 4, .max_positions = 4, .freq_factors = {1, 0}})
                      .status()
                      .message()),
      HasSubstr("frequency factors must be finite and > 0"));
  EXPECT_THAT(std::string(BuildRopeCache({.head_dim = 4, .max_positions = 4, .attention_factor = 0})
                              .status()
                              .message()),
              HasSubstr("attention_factor"));
  EXPECT_THAT(std::string(BuildRopeCache({.head_dim = 7, .max_positions = 4}).status().message()),
              HasSubstr("rope: head_dim"));
  EXPECT_THAT(std::string(BuildRopeCache({.head_dim = 8, .max_positions = 0}).status().message()),
              HasSubstr("max_positions"));
  const absl::Status s =
      BuildRopeCache({.head_dim = 8,
                      .max_positions = 4,
                      .llama3 = {.factor = 8.0, .low_freq_factor = 4.0, .high_freq_factor = 1.0}})
          .status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("low_freq_factor < high_freq_factor"));
}

class ApplyRotaryTest : public ::testing::TestWithParam<RotaryStyle> {
 protected:
  void SetUp() override {
    absl::StatusOr<RopeCache> cache =
        BuildRopeCache({.head_dim = kDim, .max_positions = kMaxPositions, .theta = 10000.0});
    ASSERT_TRUE(cache.ok());
    cache_ = *std::move(cache);
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    qkv_.resize(kTokens * kStride);
    for (float& x : qkv_) x = uniform(rng);
    // Values stay untouched; poison them so a write past k shows.
    for (int64_t t = 0; t < kTokens; ++t) {
      for (int64_t i = (kHeads + kKvHeads) * kDim; i < kStride; ++i) {
        qkv_[t * kStride + i] = std::numeric_limits<float>::quiet_NaN();
      }
    }
  }

  RotaryParams Params() {
    return {.q = qkv_.data(),
            .k = qkv_.data() + kHeads * kDim,
            .positions = positions_.data(),
            .cache = &cache_,
            .num_tokens = kTokens,
            .num_heads = kHeads,
            .num_kv_heads = kKvHeads,
            .head_dim = kDim,
            .q_stride = kStride,
            .k_stride = kStride,
            .style = GetParam()};
  }

  RopeCache cache_;
  std::vector<float> qkv_;
  std::vector<int32_t> positions_ = {0, 1, 2, 9, 31, 48, 49};
};

TEST_P(ApplyRotaryTest, RotatesPairsByPositionTimesFrequency) {
  const std::vector<float> before = qkv_;
  ASSERT_TRUE(ApplyRotary(Params()).ok());
  const bool interleaved = GetParam() == RotaryStyle::kInterleaved;
  for (int64_t t = 0; t < kTokens; ++t) {
    for (int64_t h = 0; h < kHeads + kKvHeads; ++h) {
      const int64_t base = t * kStride + h * kDim;
      for (int64_t i = 0; i < kDim / 2; ++i) {
        const double angle = positions_[t] * InvFreq(i, kDim, 10000.0);
        const int64_t a = base + (interleaved ? 2 * i : i);
        const int64_t b = base + (interleaved ? 2 * i + 1 : i + kDim / 2);
        const double want_a = before[a] * std::cos(angle) - before[b] * std::sin(angle);
        const double want_b = before[b] * std::cos(angle) + before[a] * std::sin(angle);
        EXPECT_NEAR(qkv_[a], want_a, 1e-5) << "token " << t << " head " << h << " pair " << i;
        EXPECT_NEAR(qkv_[b], want_b, 1e-5) << "token " << t << " head " << h << " pair " << i;
      }
    }
    for (int64_t i = (kHeads + kKvHeads) * kDim; i < kStride; ++i) {
      EXPECT_TRUE(std::isnan(qkv_[t * kStride + i]));
    }
  }
}

TEST_P(ApplyRotaryTest, PositionOutOfRangeIsInvalidAndRotatesNothing) {
  const std::vector<float> before = qkv_;
  for (int32_t bad : {static_cast<int32_t>(kMaxPositions), -1}) {
    positions_[3] = bad;
    const absl::Status s = ApplyRotary(Params());
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(s.message()), HasSubstr("rotary: positions[3]=" + std::to_string(bad)));
    for (size_t i = 0; i < before.size(); ++i) {
      if (!std::isnan(before[i])) {
        ASSERT_EQ(qkv_[i], before[i]);
      }
    }
  }
}

TEST_P(ApplyRotaryTest, RejectsMismatchedCacheAndShortStride) {
  RotaryParams p = Params();
  p.head_dim = 8;
  EXPECT_THAT(std::string(ApplyRotary(p).message()), HasSubstr("cache head_dim"));
  p = Params();
  p.k_stride = kKvHeads * kDim - 1;
  EXPECT_THAT(std::string(ApplyRotary(p).message()), HasSubstr("k_stride"));
}

INSTANTIATE_TEST_SUITE_P(Styles, ApplyRotaryTest,
                         ::testing::Values(RotaryStyle::kRotateHalf, RotaryStyle::kInterleaved),
                         [](const auto& info) {
                           return info.param == RotaryStyle::kRotateHalf ? "RotateHalf"
                                                                         : "Interleaved";
                         });

// Partial rotary (Phi-3.5 / Phi-4-mini, transformers' apply_rotary_pos_emb): the first rotary_dim
// dims of each head rotate as a rotate-half head of that size; the rest pass through unchanged.
TEST(ApplyRotary, PartialRotaryRotatesTheFirstDimsOnly) {
  constexpr int64_t kRotaryDim = 6;
  constexpr int64_t kHalf = kRotaryDim / 2;
  absl::StatusOr<RopeCache> cache =
      BuildRopeCache({.head_dim = kRotaryDim, .max_positions = kMaxPositions, .theta = 500.0});
  ASSERT_TRUE(cache.ok());
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> qkv(kTokens * kStride);
  for (float& x : qkv) x = uniform(rng);
  const std::vector<float> before = qkv;
  const std::vector<int32_t> positions = {0, 1, 2, 9, 31, 48, 49};
  RotaryParams p{.q = qkv.data(),
                 .k = qkv.data() + kHeads * kDim,
                 .positions = positions.data(),
                 .cache = &*cache,
                 .num_tokens = kTokens,
                 .num_heads = kHeads,
                 .num_kv_heads = kKvHeads,
                 .head_dim = kDim,
                 .rotary_dim = kRotaryDim,
                 .q_stride = kStride,
                 .k_stride = kStride};
  ASSERT_TRUE(ApplyRotary(p).ok());
  for (int64_t t = 0; t < kTokens; ++t) {
    for (int64_t h = 0; h < kHeads + kKvHeads; ++h) {
      const int64_t base = t * kStride + h * kDim;
      for (int64_t i = 0; i < kHalf; ++i) {
        const double angle = positions[t] * InvFreq(i, kRotaryDim, 500.0);
        const int64_t a = base + i;
        const int64_t b = base + i + kHalf;
        EXPECT_NEAR(qkv[a], before[a] * std::cos(angle) - before[b] * std::sin(angle), 1e-5);
        EXPECT_NEAR(qkv[b], before[b] * std::cos(angle) + before[a] * std::sin(angle), 1e-5);
      }
      for (int64_t i = kRotaryDim; i < kDim; ++i) {
        EXPECT_EQ(qkv[base + i], before[base + i]) << "token " << t << " head " << h;
      }
    }
    for (int64_t i = (kHeads + kKvHeads) * kDim; i < kStride; ++i) {  // values untouched
      EXPECT_EQ(qkv[t * kStride + i], before[t * kStride + i]);
    }
  }
  p.rotary_dim = kDim + 2;
  EXPECT_THAT(std::string(ApplyRotary(p).message()), HasSubstr("rotary_dim=12 must be even"));
  p.rotary_dim = 8;
  EXPECT_THAT(std::string(ApplyRotary(p).message()),
              HasSubstr("cache head_dim=6 differs from the rotated dims 8"));
}

}  // namespace
}  // namespace pagoda::kernels
