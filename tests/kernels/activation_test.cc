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

using GatedOp = absl::Status (*)(const SiluAndMulParams&);

double SiluReference(double g) { return g / (1.0 + std::exp(-g)); }

// PyTorch's gelu(approximate="tanh").
double GeluTanhReference(double g) {
  return 0.5 * g * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (g + 0.044715 * g * g * g)));
}

// op(gate) * up against reference(gate) * up written in double.
void CheckGatedOp(GatedOp op, double (*reference)(double), int64_t tokens, int64_t d, float range,
                  uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-range, range);
  std::vector<float> in(static_cast<size_t>(tokens * 2 * d));
  for (float& x : in) x = uniform(rng);
  std::vector<float> out(static_cast<size_t>(tokens * d), std::numeric_limits<float>::quiet_NaN());
  ASSERT_TRUE(op({.input = in.data(), .output = out.data(), .num_tokens = tokens, .d = d}).ok());
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t i = 0; i < d; ++i) {
      const double g = in[t * 2 * d + i];
      const double want = reference(g) * in[t * 2 * d + d + i];
      // 1e-5 relative + 1e-6 absolute: the exp is a polynomial good to a few ulp.
      ASSERT_NEAR(out[t * d + i], want, 1e-6 + 1e-5 * std::abs(want))
          << "token " << t << " i " << i << " gate " << g;
    }
  }
}

void CheckAgainstReference(int64_t tokens, int64_t d, float range, uint32_t seed) {
  CheckGatedOp(SiluAndMul, SiluReference, tokens, d, range, seed);
}

void CheckGeluTanhAgainstReference(int64_t tokens, int64_t d, float range, uint32_t seed) {
  CheckGatedOp(GeluTanhAndMul, GeluTanhReference, tokens, d, range, seed);
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

TEST(GeluTanhAndMul, MatchesReferenceOnOddSizes) { CheckGeluTanhAgainstReference(7, 77, 6.0f, 4); }

TEST(GeluTanhAndMul, SaturatesForLargeGates) { CheckGeluTanhAgainstReference(3, 33, 150.0f, 5); }

TEST(GeluTanhAndMul, ManyTokensTakeTheThreadedPathToo) {
  CheckGeluTanhAgainstReference(301, 129, 4.0f, 6);
}

TEST(GeluTanhAndMul, RejectsBadParams) {
  float buf[4] = {};
  const absl::Status s = GeluTanhAndMul({.input = buf, .output = buf, .num_tokens = -1, .d = 2});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
}

TEST(SoftCap, EqualsCapTimesTanhAndRejectsABadCap) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> uniform(-200.0f, 200.0f);
  // More than one chunk and enough for the threaded path.
  std::vector<float> x(70001);
  for (float& v : x) v = uniform(rng);
  x[0] = 0.0f;
  x[1] = 1e-3f;
  const std::vector<float> before = x;
  ASSERT_TRUE(
      SoftCap({.data = x.data(), .count = static_cast<int64_t>(x.size()), .cap = 30.0f}).ok());
  for (size_t i = 0; i < x.size(); ++i) {
    const double want = 30.0 * std::tanh(static_cast<double>(before[i]) / 30.0);
    // Absolute: the 1 - 2/(1 + e^y) form loses the low bits of small values against cap.
    ASSERT_NEAR(x[i], want, 2e-5) << "x " << before[i];
  }
  EXPECT_EQ(SoftCap({.data = x.data(), .count = 1, .cap = 0.0f}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SoftCap({.data = nullptr, .count = 1, .cap = 1.0f}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(SoftCap({.data = nullptr, .count = 0, .cap = 1.0f}).ok());
}

}  // namespace
}  // namespace pagoda::kernels
