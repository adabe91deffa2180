// The arrival process of `pagoda bench serve`: seeded gamma gaps with the requested mean rate
// and the coefficient of variation 1 / sqrt(burstiness).
#include "tools/bench/arrivals.h"

#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagoda {
namespace {

constexpr int64_t kCount = 2001;  // 2000 gaps

std::vector<double> Gaps(const std::vector<double>& times) {
  std::vector<double> gaps;
  for (size_t i = 1; i < times.size(); ++i) gaps.push_back(times[i] - times[i - 1]);
  return gaps;
}

double Mean(const std::vector<double>& v) {
  return std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

double CoefficientOfVariation(const std::vector<double>& v) {
  const double mean = Mean(v);
  double squares = 0;
  for (double x : v) squares += (x - mean) * (x - mean);
  return std::sqrt(squares / static_cast<double>(v.size() - 1)) / mean;
}

TEST(ArrivalTimes, MeanGapIsOneOverTheRateWithinFiveSigma) {
  for (const double burstiness : {1.0, 0.5, 4.0}) {
    for (const double rate : {2.0, 20.0, 500.0}) {
      const std::vector<double> gaps =
          Gaps(ArrivalTimes(kCount, {.request_rate = rate, .burstiness = burstiness, .seed = 7}));
      ASSERT_EQ(gaps.size(), 2000u);
      // Gamma(k, 1 / (rate * k)): mean 1 / rate, standard deviation (1 / rate) / sqrt(k); the
      // mean of N gaps has sigma (1 / rate) / sqrt(k * N).
      const double sigma_of_mean = (1 / rate) / std::sqrt(burstiness * 2000);
      EXPECT_NEAR(Mean(gaps), 1 / rate, 5 * sigma_of_mean)
          << "rate " << rate << ", burstiness " << burstiness;
    }
  }
}

TEST(ArrivalTimes, StartAtZeroAndNeverDecrease) {
  const std::vector<double> times = ArrivalTimes(kCount, {.request_rate = 10, .seed = 3});
  EXPECT_EQ(times[0], 0.0);
  for (size_t i = 1; i < times.size(); ++i) EXPECT_GE(times[i], times[i - 1]);
}

TEST(ArrivalTimes, SameSeedSameTimesOtherSeedOtherTimes) {
  const ArrivalOptions a{.request_rate = 20, .burstiness = 1, .seed = 42};
  ArrivalOptions b = a;
  b.seed = 43;
  EXPECT_EQ(ArrivalTimes(kCount, a), ArrivalTimes(kCount, a));
  EXPECT_NE(ArrivalTimes(kCount, a), ArrivalTimes(kCount, b));
}

TEST(ArrivalTimes, BurstinessSetsTheCoefficientOfVariation) {
  // Gamma(k) has CV 1 / sqrt(k) and kurtosis 3 + 6 / k; the sample standard deviation of N
  // draws has a relative standard error of about sqrt((kurtosis - 1) / N) / 2, which bounds the
  // CV's too. Five of those are allowed.
  for (const double burstiness : {0.25, 1.0, 4.0}) {
    const std::vector<double> gaps =
        Gaps(ArrivalTimes(kCount, {.request_rate = 20, .burstiness = burstiness, .seed = 11}));
    const double expected = 1 / std::sqrt(burstiness);
    const double relative_sigma = std::sqrt((2 + 6 / burstiness) / 2000) / 2;
    EXPECT_NEAR(CoefficientOfVariation(gaps), expected, 5 * relative_sigma * expected)
        << "burstiness " << burstiness;
  }
  const auto cv = [](double k) {
    return CoefficientOfVariation(
        Gaps(ArrivalTimes(kCount, {.request_rate = 20, .burstiness = k, .seed = 11})));
  };
  EXPECT_GT(cv(0.25), cv(1.0));
  EXPECT_GT(cv(1.0), cv(4.0));
}

TEST(ArrivalTimes, InfiniteRateSendsEverythingAtOnce) {
  const std::vector<double> times =
      ArrivalTimes(100, {.request_rate = std::numeric_limits<double>::infinity()});
  EXPECT_THAT(times, ::testing::Each(0.0));
  EXPECT_EQ(times.size(), 100u);
}

TEST(ParseRequestRate, AcceptsInfAndPositiveNumbers) {
  EXPECT_TRUE(std::isinf(*ParseRequestRate("inf")));
  EXPECT_TRUE(std::isinf(*ParseRequestRate("Infinity")));
  EXPECT_EQ(*ParseRequestRate("12.5"), 12.5);
  for (const char* bad : {"0", "-3", "fast", "", "nan"}) {
    const absl::StatusOr<double> rate = ParseRequestRate(bad);
    ASSERT_FALSE(rate.ok()) << bad;
    EXPECT_EQ(rate.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(rate.status().message(), ::testing::HasSubstr("--request-rate"));
  }
}

}  // namespace
}  // namespace pagoda
