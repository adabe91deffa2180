// Statistics and metrics of `pagoda bench` on hand-computed data: numpy's percentiles, vLLM's
// TTFT / TPOT / ITL / E2EL definitions, throughput and goodput under SLOs.
#include "tools/bench/statistics.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tools/bench/bench_metrics.h"

namespace pagoda {
namespace {

using ::testing::HasSubstr;

TEST(Percentile, InterpolatesLinearlyBetweenRanksLikeNumpy) {
  const std::vector<double> values = {4, 1, 3, 2};  // unsorted on purpose
  EXPECT_DOUBLE_EQ(Percentile(values, 0), 1);
  EXPECT_DOUBLE_EQ(Percentile(values, 50), 2.5);
  EXPECT_DOUBLE_EQ(Percentile(values, 90), 3.7);   // rank 2.7
  EXPECT_DOUBLE_EQ(Percentile(values, 99), 3.97);  // rank 2.97
  EXPECT_DOUBLE_EQ(Percentile(values, 100), 4);
  EXPECT_DOUBLE_EQ(Percentile({7}, 99), 7);
  EXPECT_DOUBLE_EQ(Percentile({}, 50), 0);
}

TEST(Summarize, MeanPopulationStdAndPercentiles) {
  const Summary s = Summarize({2, 4, 4, 4, 5, 5, 7, 9});
  EXPECT_DOUBLE_EQ(s.mean, 5);
  EXPECT_DOUBLE_EQ(s.std, 2);  // np.std: divides by n
  EXPECT_DOUBLE_EQ(s.median, 4.5);
  EXPECT_NEAR(s.p90, 7.6, 1e-12);   // rank 6.3: 7 + 0.3 * 2
  EXPECT_NEAR(s.p99, 8.86, 1e-12);  // rank 6.93: 7 + 0.93 * 2
  const Summary empty = Summarize({});
  EXPECT_EQ(empty.mean, 0);
  EXPECT_EQ(empty.p99, 0);
}

// Three completed requests and a failed one over a 2-second run.
std::vector<RequestRecord> Records() {
  return {
      {.success = true,
       .prompt_tokens = 10,
       .output_tokens = 5,
       .ttft_s = 0.1,
       .latency_s = 0.5,
       .itl_s = {0.1, 0.1, 0.1, 0.1}},  // TPOT (0.5 - 0.1) / 4 = 0.1
      {.success = true,
       .prompt_tokens = 20,
       .output_tokens = 1,
       .ttft_s = 0.3,
       .latency_s = 0.3},  // one token: no TPOT (0 for goodput)
      {.success = true,
       .prompt_tokens = 30,
       .output_tokens = 3,
       .ttft_s = 0.05,
       .latency_s = 0.45,
       .itl_s = {0.2, 0.2}},  // TPOT 0.4 / 2 = 0.2
      {.success = false,
       .error = "UNAVAILABLE: gone",
       .prompt_tokens = 99,
       .output_tokens = 99,
       .ttft_s = 9,
       .latency_s = 9},
  };
}

TEST(ComputeMetrics, CountsCompletedRequestsWithVllmDefinitions) {
  const BenchMetrics m = ComputeMetrics(Records(), /*duration_s=*/2, std::nullopt);
  EXPECT_EQ(m.completed, 3);
  EXPECT_EQ(m.failed, 1);
  EXPECT_EQ(m.total_input_tokens, 60);
  EXPECT_EQ(m.total_output_tokens, 9);
  EXPECT_DOUBLE_EQ(m.request_throughput, 1.5);
  EXPECT_DOUBLE_EQ(m.output_throughput, 4.5);
  EXPECT_DOUBLE_EQ(m.total_token_throughput, 34.5);
  EXPECT_NEAR(m.ttft_ms.mean, 150, 1e-9);  // 100, 300, 50
  EXPECT_NEAR(m.ttft_ms.median, 100, 1e-9);
  EXPECT_NEAR(m.tpot_ms.mean, 150, 1e-9);  // 100, 200: the one-token request has none
  EXPECT_NEAR(m.tpot_ms.median, 150, 1e-9);
  EXPECT_NEAR(m.itl_ms.mean, 800.0 / 6, 1e-9);  // pooled gaps: 4 x 100, 2 x 200
  EXPECT_NEAR(m.itl_ms.median, 100, 1e-9);
  EXPECT_NEAR(m.itl_ms.p90, 200, 1e-9);
  EXPECT_NEAR(m.e2el_ms.mean, 1250.0 / 3, 1e-9);  // 500, 300, 450
  EXPECT_NEAR(m.e2el_ms.median, 450, 1e-9);
  EXPECT_FALSE(m.request_goodput.has_value());
}

TEST(ComputeMetrics, GoodputCountsRequestsMeetingEverySlo) {
  const auto goodput = [](const SloSpec& slo) {
    const BenchMetrics m = ComputeMetrics(Records(), 2, slo);
    return std::make_pair(*m.good_completed, *m.request_goodput);
  };
  // TTFT 100/300/50 vs 200 and TPOT 100/-/200 vs 150: only the first.
  EXPECT_EQ(goodput({.ttft_ms = 200, .tpot_ms = 150}), std::make_pair(int64_t{1}, 0.5));
  // A one-token request's TPOT counts as 0 and meets any bound.
  EXPECT_EQ(goodput({.tpot_ms = 150}), std::make_pair(int64_t{2}, 1.0));
  EXPECT_EQ(goodput({.e2el_ms = 460}), std::make_pair(int64_t{2}, 1.0));
  EXPECT_EQ(goodput({.ttft_ms = 1000, .tpot_ms = 1000, .e2el_ms = 1000}),
            std::make_pair(int64_t{3}, 1.5));  // the failed request never counts
}

// One request after another (batch 1): the prefills between the spans are left out.
TEST(DecodeThroughput, CountsTokensAfterTheFirstOverTheTimeSpentDecoding) {
  // 10 tokens in 9 gaps over 0.9 s, then 5 tokens in 4 gaps over 0.4 s; the 0.5 s between is a
  // prefill. 13 tokens after the firsts in 1.3 s.
  const std::vector<DecodeSpan> serial = {
      {.first_token_s = 1.0, .last_token_s = 1.9, .output_tokens = 10},
      {.first_token_s = 2.4, .last_token_s = 2.8, .output_tokens = 5}};
  EXPECT_DOUBLE_EQ(DecodeThroughput(serial), 10);
  EXPECT_DOUBLE_EQ(TimePerOutputToken(serial[0]), 0.1);
}

// Overlapping spans (a batch) count their shared time once; a one-token request adds nothing.
TEST(DecodeThroughput, CountsOverlappingSpansOnce) {
  // Unsorted on purpose: [0, 2], [1, 3], [1.5, 2.5] (inside the union) and [5, 6]: 4 s.
  const std::vector<DecodeSpan> spans = {
      {.first_token_s = 1, .last_token_s = 3, .output_tokens = 3},
      {.first_token_s = 5, .last_token_s = 6, .output_tokens = 3},
      {.first_token_s = 0, .last_token_s = 2, .output_tokens = 5},
      {.first_token_s = 1.5, .last_token_s = 2.5, .output_tokens = 5},
      {.first_token_s = 9, .last_token_s = 9, .output_tokens = 1}};
  EXPECT_DOUBLE_EQ(DecodeThroughput(spans), (2 + 2 + 4 + 4) / 4.0);
  EXPECT_DOUBLE_EQ(DecodeThroughput({}), 0);
  EXPECT_DOUBLE_EQ(DecodeThroughput({{.first_token_s = 1, .last_token_s = 1, .output_tokens = 1}}),
                   0);
  EXPECT_DOUBLE_EQ(TimePerOutputToken(spans[4]), 0);
}

TEST(ParseSlo, ReadsAnySubsetOfTheThreeBounds) {
  auto slo = ParseSlo("ttft:500,tpot:50");
  ASSERT_TRUE(slo.ok()) << slo.status();
  EXPECT_EQ(slo->ttft_ms, 500);
  EXPECT_EQ(slo->tpot_ms, 50);
  EXPECT_FALSE(slo->e2el_ms.has_value());
  EXPECT_EQ(FormatSlo(*slo), "ttft:500,tpot:50");
  auto e2el = ParseSlo("e2el:2500.5");
  ASSERT_TRUE(e2el.ok());
  EXPECT_EQ(e2el->e2el_ms, 2500.5);
}

TEST(ParseSlo, RejectsMalformedBoundsNamingTheFlag) {
  for (const char* bad : {"", "ttft", "ttft:", "ttft:-5", "ttft:0", "ttft:abc", "latency:5",
                          "ttft:5,ttft:6", "ttft:5,"}) {
    const absl::Status status = ParseSlo(bad).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(status.message(), HasSubstr("--slo")) << bad;
  }
}

}  // namespace
}  // namespace pagoda
