#include "kernels/activation.h"

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagoda::kernels {
namespace {

using ::testing::HasSubstr;

void CheckAgainstReference(int64_t tokens, int64_t d, float range, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-range, range);
  std::vector<float> in(static_cast<size_t>(tokens * 2 * d));
  for (float& x : in) x = uniform(rng);
  std::vector<float> out(static_cast<size_t>(tokens * d), std::numeric_limits<float>::quiet_NaN());
  ASSERT_TRUE(
      SiluAndMul({.input = in.data(), .output = out.data(), .num_tokens = tokens, .d = d}).ok());
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t i = 0; i < d; ++i) {
      const double g = in[t * 2 * d + i];
      const double want = g / (1.0 + std::exp(-g)) * in[t * 2 * d + d + i];
      // 1e-5 relative + 1e-6 absolute: the exp is a polynomial good to a few ulp.
      ASSERT_NEAR(out[t * d + i], want, 1e-6 + 1e-5 * std::abs(want))
          << "token " << t << " i " << i << " gate " << g;
    }
  }
}

TEST(SiluAndMul, MatchesReferenceOnOddSizes) { CheckAgainstReference(7, 77, 8.0f, 1); }

TEST(SiluAndMul, SaturatesForLargeGates) { CheckAgainstReference(3, 33, 150.0f, 2); }

TEST(SiluAndMul, ManyTokensTakeTheThreadedPathToo) { CheckAgainstReference(301, 129, 6.0f, 3); }

TEST(SiluAndMul, RejectsBadParams) {
  float buf[4] = {};
  absl::Status s = SiluAndMul({.input = buf, .output = nullptr, .num_tokens = 1, .d = 2});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("silu_and_mul"));
  s = SiluAndMul({.input = buf, .output = buf, .num_tokens = 1, .d = 0});
  EXPECT_THAT(std::string(s.message()), HasSubstr("d=0"));
  EXPECT_TRUE(SiluAndMul({.input = nullptr, .output = nullptr, .num_tokens = 0, .d = 2}).ok());
}

}  // namespace
}  // namespace pagoda::kernels
