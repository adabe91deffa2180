#include "kernels/gemm.h"

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

std::vector<float> Random(int64_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = uniform(rng);
  return v;
}

// C = alpha * A B^T + beta * C in double, B in [n, k] layout.
std::vector<double> Reference(const std::vector<float>& a, const std::vector<float>& b,
                              const std::vector<float>& c, int64_t m, int64_t n, int64_t k,
                              float alpha, float beta) {
  std::vector<double> out(static_cast<size_t>(m * n));
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double dot = 0.0;
      for (int64_t x = 0; x < k; ++x) dot += double{a[i * k + x]} * b[j * k + x];
      out[i * n + j] = alpha * dot + (beta == 0.0f ? 0.0 : beta * double{c[i * n + j]});
    }
  }
  return out;
}

// Tolerance 1e-5 relative + 1e-5 absolute: k = 131 products of O(1) values in fp32.
void Check(int64_t m, int64_t n, int64_t k, float alpha, float beta, uint32_t seed) {
  std::mt19937 rng(seed);
  const std::vector<float> a = Random(m * k, rng);
  const std::vector<float> b = Random(n * k, rng);
  std::vector<float> c = beta == 0.0f
                             ? std::vector<float>(m * n, std::numeric_limits<float>::quiet_NaN())
                             : Random(m * n, rng);
  const std::vector<double> want = Reference(a, b, c, m, n, k, alpha, beta);
  ASSERT_TRUE(Gemm({.a = a.data(),
                    .b = b.data(),
                    .c = c.data(),
                    .m = m,
                    .n = n,
                    .k = k,
                    .alpha = alpha,
                    .beta = beta})
                  .ok());
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_NEAR(c[i], want[i], 1e-5 + 1e-5 * std::abs(want[i])) << "m=" << m << " at " << i;
  }
}

TEST(Gemm, MatchesNaiveForGemvAndGemm) {
  for (int64_t m : {1, 2, 7}) {
    Check(m, 77, 131, 1.0f, 0.0f, 1);
  }
}

TEST(Gemm, BetaOneAccumulatesIntoC) {
  for (int64_t m : {1, 7}) {
    Check(m, 77, 131, 1.0f, 1.0f, 2);
  }
}

TEST(Gemm, AlphaScales) { Check(5, 33, 65, 0.5f, 0.0f, 3); }

TEST(Gemm, GemvAndGemmAgreeRowByRow) {
  std::mt19937 rng(4);
  constexpr int64_t kM = 7, kN = 77, kK = 131;
  const std::vector<float> a = Random(kM * kK, rng);
  const std::vector<float> b = Random(kN * kK, rng);
  std::vector<float> full(kM * kN);
  ASSERT_TRUE(
      Gemm({.a = a.data(), .b = b.data(), .c = full.data(), .m = kM, .n = kN, .k = kK}).ok());
  for (int64_t i = 0; i < kM; ++i) {
    std::vector<float> row(kN);
    ASSERT_TRUE(
        Gemm({.a = a.data() + i * kK, .b = b.data(), .c = row.data(), .m = 1, .n = kN, .k = kK})
            .ok());
    for (int64_t j = 0; j < kN; ++j) ASSERT_NEAR(row[j], full[i * kN + j], 1e-5);
  }
}

TEST(Gemm, RejectsBadParams) {
  const absl::Status s = Gemm({.m = 1, .n = 0, .k = 4});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("gemm: bad shape"));
  EXPECT_THAT(std::string(Gemm({.m = 2, .n = 3, .k = 4}).message()), HasSubstr("null"));
  EXPECT_TRUE(Gemm({.m = 0, .n = 3, .k = 4}).ok());
}

}  // namespace
}  // namespace pagoda::kernels
