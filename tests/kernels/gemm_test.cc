#include "kernels/gemm.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/dequantize.h"

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

TEST(Gemm, RejectsKThatSplitsABlockAndUnknownDTypes) {
  const float a[64] = {};
  const uint8_t b[64] = {};
  float c[1];
  const absl::Status s =
      Gemm({.a = a, .b = b, .b_dtype = DType::kQ4_0, .c = c, .m = 1, .n = 1, .k = 48});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("k=48 is not a whole number of 32-element q4_0"));
  EXPECT_THAT(std::string(Gemm({.a = a,
                                .b = b,
                                .b_dtype = static_cast<DType>(kNumDTypes),
                                .c = c,
                                .m = 1,
                                .n = 1,
                                .k = 32})
                              .message()),
              HasSubstr("unknown weight dtype"));
}

// Weights in any DType. The float types are converted from random fp32; the block formats are
// random bytes whose float16 scale fields (offsets as in ggml-common.h) are then set to finite
// values in +-[1/64, 1/8], so every weight is finite and of order 1..100.
std::vector<uint8_t> RandomWeights(DType dtype, int64_t n, int64_t k, std::mt19937& rng) {
  static const std::map<DType, std::vector<int>> kHalfFields = {
      {DType::kQ8_0, {0}},   {DType::kQ4_0, {0}},    {DType::kQ4_1, {0, 2}},
      {DType::kQ5_0, {0}},   {DType::kQ5_1, {0, 2}}, {DType::kQ2_K, {80, 82}},
      {DType::kQ3_K, {108}}, {DType::kQ4_K, {0, 2}}, {DType::kQ5_K, {0, 2}},
      {DType::kQ6_K, {208}}};
  const DTypeTraits& t = Traits(dtype);
  std::vector<uint8_t> w(static_cast<size_t>(n * k / t.block_elements * t.block_bytes));
  if (!t.quantized) {
    const std::vector<float> f = Random(n * k, rng);
    EXPECT_TRUE(
        Quantize({.dtype = dtype, .src = f.data(), .dst = w.data(), .num_elements = n * k}).ok());
    return w;
  }
  std::uniform_int_distribution<int> byte(0, 255);
  for (uint8_t& x : w) x = static_cast<uint8_t>(byte(rng));
  std::uniform_real_distribution<float> scale(1.0f / 64, 1.0f / 8);
  for (size_t block = 0; block < w.size(); block += t.block_bytes) {
    for (int offset : kHalfFields.at(dtype)) {
      const float value = (byte(rng) & 1 ? -1.0f : 1.0f) * scale(rng);
      EXPECT_TRUE(
          Quantize(
              {.dtype = DType::kF16, .src = &value, .dst = &w[block + offset], .num_elements = 1})
              .ok());
    }
  }
  return w;
}

// Checks C = alpha A dequant(B)^T + beta C against float64 sums over the dequantized weights
// (Dequantize equals the gguf reference bit for bit, dequantize_test.cc). Tolerance: any order
// of summing k fp32 products, scaling by alpha and adding beta C rounds each term at most k + 4
// times, so |error| <= gamma * (|alpha| sum_t |a_t w_t| + |beta c|) with
// gamma = (k + 4) u / (1 - (k + 4) u), u = 2^-24 (Higham, Accuracy and Stability, 3.1). A wrong
// block, scale or row is off by a sizeable fraction of that sum instead.
void CheckDType(DType dtype, int64_t m, int64_t n, int64_t k, float alpha, float beta,
                uint32_t seed) {
  SCOPED_TRACE(
      absl::StrCat(std::string(DTypeName(dtype)), " m=", m, " n=", n, " k=", k, " beta=", beta));
  std::mt19937 rng(seed);
  const std::vector<uint8_t> w = RandomWeights(dtype, n, k, rng);
  const std::vector<float> a = Random(m * k, rng);
  const std::vector<float> c0 =
      beta == 0.0f ? std::vector<float>(m * n, std::nanf("")) : Random(m * n, rng);
  std::vector<float> w_f32(static_cast<size_t>(n * k));
  ASSERT_TRUE(
      Dequantize({.dtype = dtype, .src = w.data(), .dst = w_f32.data(), .num_elements = n * k})
          .ok());
  std::vector<float> c = c0;
  ASSERT_TRUE(Gemm({.a = a.data(),
                    .b = w.data(),
                    .b_dtype = dtype,
                    .c = c.data(),
                    .m = m,
                    .n = n,
                    .k = k,
                    .alpha = alpha,
                    .beta = beta})
                  .ok());
  const double u = std::ldexp(1.0, -24);
  const double gamma = (k + 4) * u / (1 - (k + 4) * u);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double dot = 0.0, magnitude = 0.0;
      for (int64_t t = 0; t < k; ++t) {
        const double p = double{a[i * k + t]} * w_f32[j * k + t];
        dot += p;
        magnitude += std::abs(p);
      }
      const double c_in = beta == 0.0f ? 0.0 : double{beta} * c0[i * n + j];
      const double want = alpha * dot + c_in;
      const double bound = gamma * (std::abs(alpha) * magnitude + std::abs(c_in));
      ASSERT_LE(std::abs(c[i * n + j] - want), bound) << "at row " << i << ", column " << j;
    }
  }
}

class GemmDTypes : public ::testing::TestWithParam<DType> {
 protected:
  // Several blocks, with a partial last 256-element piece where the format allows one.
  int64_t K() const {
    const int64_t block = Traits(GetParam()).block_elements;
    return block == 1 ? 517 : block == 32 ? 17 * 32 : 3 * 256;
  }
};

TEST_P(GemmDTypes, MatchesFloat64ReferenceOnDequantizedWeights) {
  // m: one row (the streaming path for quantized weights, and for F32 the skinny kernel), odd
  // counts on both sides of the F32 skinny kernel's limit of 8 (dequantized panels and sgemm for
  // the others). n: not a multiple of the 4-row groups; 261 rows split over the threads and, at
  // the larger k, into several panels per thread.
  for (int64_t m : {1, 3, 8, 9, 17}) {
    for (int64_t n : {37, 261}) CheckDType(GetParam(), m, n, K(), 1.0f, 0.0f, 7);
  }
}

TEST_P(GemmDTypes, AlphaAndBetaApply) {
  for (int64_t m : {3, 17}) CheckDType(GetParam(), m, 37, K(), 0.5f, 1.0f, 8);
}

INSTANTIATE_TEST_SUITE_P(AllDTypes, GemmDTypes,
                         ::testing::Values(DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0,
                                           DType::kQ4_0, DType::kQ4_1, DType::kQ5_0, DType::kQ5_1,
                                           DType::kQ2_K, DType::kQ3_K, DType::kQ4_K, DType::kQ5_K,
                                           DType::kQ6_K),
                         [](const ::testing::TestParamInfo<DType>& info) {
                           return std::string(Traits(info.param).ggml_name);
                         });

}  // namespace
}  // namespace pagoda::kernels
