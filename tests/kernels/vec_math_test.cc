#include "kernels/cpu/internal/vec_math.h"

#include <cmath>
#include <limits>

#include "gtest/gtest.h"

namespace pagoda::kernels::internal {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

TEST(FastExp, AgreesWithStdExpAcrossItsRange) {
  for (float x = -87.0f; x <= 88.0f; x += 0.01f) {
    const float expected = std::exp(x);
    EXPECT_NEAR(FastExp(x), expected, 4e-7f * expected) << "x = " << x;
    if (x <= 0) {
      EXPECT_EQ(FastExp<ExpUnderflow::kZero>(x), FastExp(x)) << "x = " << x;
    }
  }
  EXPECT_EQ(FastExp(0.0f), 1.0f);
  EXPECT_EQ(FastExp<ExpUnderflow::kZero>(0.0f), 1.0f);
}

TEST(FastExp, ClampModeSaturatesOutsideItsRange) {
  EXPECT_EQ(FastExp(-1000.0f), FastExp(-87.0f));
  EXPECT_EQ(FastExp(-kInf), FastExp(-87.0f));
  EXPECT_GT(FastExp(-kInf), 0.0f);
  EXPECT_EQ(FastExp(1000.0f), FastExp(88.0f));
  EXPECT_TRUE(std::isnan(FastExp(std::numeric_limits<float>::quiet_NaN())));
}

TEST(FastExp, ZeroModeGivesMaskedEntriesNoWeight) {
  EXPECT_EQ(FastExp<ExpUnderflow::kZero>(-kInf), 0.0f);
  EXPECT_EQ(FastExp<ExpUnderflow::kZero>(-87.5f), 0.0f);
  EXPECT_EQ(FastExp<ExpUnderflow::kZero>(-1e30f), 0.0f);
  EXPECT_GT(FastExp<ExpUnderflow::kZero>(-86.9f), 0.0f);
  EXPECT_EQ(FastExp<ExpUnderflow::kZero>(std::numeric_limits<float>::quiet_NaN()), 0.0f);
}

}  // namespace
}  // namespace pagoda::kernels::internal
