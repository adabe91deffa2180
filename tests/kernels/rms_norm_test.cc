#include "kernels/rms_norm.h"

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagoda::kernels {
namespace {

using ::testing::HasSubstr;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr int64_t kTokens = 7;
constexpr int64_t kHidden = 77;

std::vector<float> Random(size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> uniform(-3.0f, 3.0f);
  std::vector<float> v(n);
  for (float& x : v) x = uniform(rng);
  return v;
}

// x / sqrt(mean(x^2) + eps) * w in double.
std::vector<double> Reference(const std::vector<float>& x, const std::vector<float>& w,
                              double eps) {
  std::vector<double> out(x.size());
  for (int64_t t = 0; t < static_cast<int64_t>(x.size()) / kHidden; ++t) {
    double sum_sq = 0.0;
    for (int64_t i = 0; i < kHidden; ++i) sum_sq += double{x[t * kHidden + i]} * x[t * kHidden + i];
    const double inv = 1.0 / std::sqrt(sum_sq / kHidden + eps);
    for (int64_t i = 0; i < kHidden; ++i) out[t * kHidden + i] = x[t * kHidden + i] * inv * w[i];
  }
  return out;
}

// Tolerance: 1e-5 relative plus 1e-5 absolute (fp32 accumulation over 77 elements).
void ExpectNear(const std::vector<float>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], want[i], 1e-5 + 1e-5 * std::abs(want[i])) << "at " << i;
  }
}

TEST(RmsNorm, MatchesReference) {
  std::mt19937 rng(1);
  const std::vector<float> x = Random(kTokens * kHidden, rng);
  const std::vector<float> w = Random(kHidden, rng);
  std::vector<float> out(x.size(), kNaN);
  ASSERT_TRUE(RmsNorm({.input = x.data(),
                       .weight = w.data(),
                       .output = out.data(),
                       .num_tokens = kTokens,
                       .hidden_size = kHidden,
                       .eps = 1e-5f})
                  .ok());
  ExpectNear(out, Reference(x, w, 1e-5f));
}

TEST(RmsNorm, InPlace) {
  std::mt19937 rng(2);
  std::vector<float> x = Random(kTokens * kHidden, rng);
  const std::vector<float> w = Random(kHidden, rng);
  const std::vector<double> want = Reference(x, w, 1e-6f);
  ASSERT_TRUE(RmsNorm({.input = x.data(),
                       .weight = w.data(),
                       .output = x.data(),
                       .num_tokens = kTokens,
                       .hidden_size = kHidden})
                  .ok());
  ExpectNear(x, want);
}

TEST(RmsNorm, FusedResidualAddAccumulatesThenNormalizes) {
  std::mt19937 rng(3);
  std::vector<float> x = Random(kTokens * kHidden, rng);
  std::vector<float> residual = Random(kTokens * kHidden, rng);
  const std::vector<float> w = Random(kHidden, rng);
  std::vector<float> sum(x.size());
  for (size_t i = 0; i < x.size(); ++i) sum[i] = residual[i] + x[i];
  // Output aliasing the input is the common form: x = RmsNorm(residual += x).
  ASSERT_TRUE(RmsNorm({.input = x.data(),
                       .weight = w.data(),
                       .output = x.data(),
                       .residual = residual.data(),
                       .num_tokens = kTokens,
                       .hidden_size = kHidden,
                       .eps = 1e-5f})
                  .ok());
  EXPECT_EQ(residual, sum);
  ExpectNear(x, Reference(sum, w, 1e-5f));
}

TEST(RmsNorm, ManyTokensTakeTheThreadedPathToo) {
  constexpr int64_t kManyTokens = 1000;  // past the threading threshold
  std::mt19937 rng(4);
  const std::vector<float> x = Random(kManyTokens * kHidden, rng);
  const std::vector<float> w = Random(kHidden, rng);
  std::vector<float> out(x.size(), kNaN);
  ASSERT_TRUE(RmsNorm({.input = x.data(),
                       .weight = w.data(),
                       .output = out.data(),
                       .num_tokens = kManyTokens,
                       .hidden_size = kHidden})
                  .ok());
  ExpectNear(out, Reference(x, w, 1e-6f));
}

// Rows in groups spaced apart (per-head qk-norm inside a fused QKV row): each row is normed
// in place as the same row alone would be, the gaps between groups stay as they were, and the
// fused residual add follows the same layout. Past the threading threshold and below it.
TEST(RmsNorm, GroupedRowsAreNormedInPlaceAndTheGapsKept) {
  constexpr int64_t kHeads = 3;
  constexpr int64_t kStride = kHeads * kHidden + 13;  // 13 floats of gap after each group
  for (const int64_t groups : {int64_t{5}, int64_t{400}}) {
    std::mt19937 rng(static_cast<uint32_t>(groups));
    const int64_t rows = groups * kHeads - 1;  // the last group is one row short
    const std::vector<float> x = Random(groups * kStride, rng);
    const std::vector<float> w = Random(kHidden, rng);
    for (const bool fused : {false, true}) {
      std::vector<float> got = x;
      std::vector<float> residual = Random(x.size(), rng);
      const std::vector<float> residual_before = residual;
      ASSERT_TRUE(RmsNorm({.input = got.data(),
                           .weight = w.data(),
                           .output = got.data(),
                           .residual = fused ? residual.data() : nullptr,
                           .num_tokens = rows,
                           .hidden_size = kHidden,
                           .rows_per_group = kHeads,
                           .group_stride = kStride,
                           .eps = 1e-5f})
                      .ok());
      for (int64_t r = 0; r < groups * kHeads; ++r) {
        const int64_t at = r / kHeads * kStride + r % kHeads * kHidden;
        std::vector<float> row(x.begin() + at, x.begin() + at + kHidden);
        const std::vector<float> got_row(got.begin() + at, got.begin() + at + kHidden);
        if (r >= rows) {  // past the last row: untouched
          EXPECT_EQ(got_row, row) << r;
          continue;
        }
        if (fused) {
          for (int64_t i = 0; i < kHidden; ++i) row[i] += residual_before[at + i];
          EXPECT_EQ(std::vector<float>(residual.begin() + at, residual.begin() + at + kHidden), row)
              << r;
        }
        ExpectNear(got_row, Reference(row, w, 1e-5));
      }
      for (int64_t g = 0; g < groups; ++g) {
        const int64_t gap = g * kStride + kHeads * kHidden;
        for (int64_t i = gap; i < (g + 1) * kStride; ++i) {
          ASSERT_EQ(got[i], x[i]) << "gap of group " << g;
          ASSERT_EQ(residual[i], residual_before[i]) << "gap of group " << g;
        }
      }
    }
  }
}

TEST(RmsNorm, RejectsBadParams) {
  std::vector<float> buf(kHidden, 1.0f);
  absl::Status s = RmsNorm({.input = buf.data(),
                            .weight = nullptr,
                            .output = buf.data(),
                            .num_tokens = 1,
                            .hidden_size = kHidden});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("rms_norm: weight"));
  s = RmsNorm({.input = buf.data(),
               .weight = buf.data(),
               .output = buf.data(),
               .num_tokens = 1,
               .hidden_size = 0});
  EXPECT_THAT(std::string(s.message()), HasSubstr("hidden_size=0"));
  s = RmsNorm({.input = buf.data(),
               .weight = buf.data(),
               .output = buf.data(),
               .residual = buf.data(),
               .num_tokens = 1,
               .hidden_size = kHidden});
  EXPECT_THAT(std::string(s.message()), HasSubstr("residual"));
  // Groups that would overlap, and a stride without groups.
  for (const auto& [rows_per_group, group_stride] :
       {std::pair<int64_t, int64_t>{2, 2 * kHidden - 1}, {0, kHidden}, {-1, 0}}) {
    s = RmsNorm({.input = buf.data(),
                 .weight = buf.data(),
                 .output = buf.data(),
                 .num_tokens = 1,
                 .hidden_size = kHidden,
                 .rows_per_group = rows_per_group,
                 .group_stride = group_stride});
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(s.message()), HasSubstr("bad row groups")) << rows_per_group;
  }
}

}  // namespace
}  // namespace pagoda::kernels
