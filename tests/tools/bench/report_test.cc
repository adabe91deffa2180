// What `pagoda bench` writes: the --result-json keys (vLLM's), the report table, and `compare`.
#include "tools/bench/report.h"

#include <limits>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tools/bench/compare.h"

namespace pagoda {
namespace {

using ::testing::HasSubstr;

RunDescription Description() {
  return {.date = "20261121-120000",
          .backend = "grpc",
          .target = "grpc://127.0.0.1:50051",
          .model_id = "stories260K",
          .tokenizer_id = "models/stories260K",
          .dataset_name = "random",
          .num_prompts = 2,
          .request_rate = std::numeric_limits<double>::infinity(),
          .burstiness = 1.0,
          .max_concurrency = 0,
          .seed = 4,
          .slo = SloSpec{.ttft_ms = 200}};
}

std::vector<RequestRecord> Records() {
  return {{.success = true,
           .prompt_tokens = 10,
           .output_tokens = 3,
           .start_time_s = 0,
           .ttft_s = 0.1,
           .latency_s = 0.3,
           .itl_s = {0.1, 0.1}},
          {.success = false, .error = "UNAVAILABLE: no replica", .start_time_s = 0.01}};
}

TEST(ServeResultJson, HasEveryKeyVllmWritesAndPerRequestArrays) {
  const std::vector<RequestRecord> records = Records();
  const nlohmann::json j =
      ServeResultJson(Description(), ComputeMetrics(records, 1.0, Description().slo), records);
  std::vector<std::string> required = {"date",
                                       "backend",
                                       "model_id",
                                       "tokenizer_id",
                                       "num_prompts",
                                       "request_rate",
                                       "burstiness",
                                       "max_concurrency",
                                       "duration",
                                       "completed",
                                       "total_input_tokens",
                                       "total_output_tokens",
                                       "request_throughput",
                                       "request_goodput",
                                       "output_throughput",
                                       "total_token_throughput",
                                       "input_lens",
                                       "output_lens",
                                       "ttfts",
                                       "itls",
                                       "errors",
                                       "failed",
                                       "seed",
                                       "dataset_name",
                                       "start_times",
                                       "tpots",
                                       "e2els"};
  for (const char* metric : {"ttft", "tpot", "itl", "e2el"}) {
    for (const char* stat : {"mean", "median", "std", "p90", "p99"}) {
      required.push_back(std::string(stat) + "_" + metric + "_ms");
    }
  }
  for (const std::string& key : required) EXPECT_TRUE(j.contains(key)) << key;

  EXPECT_EQ(j["completed"], 1);
  EXPECT_EQ(j["failed"], 1);
  EXPECT_EQ(j["total_input_tokens"], 10);
  EXPECT_EQ(j["total_output_tokens"], 3);
  EXPECT_EQ(j["request_rate"], "inf");  // as vLLM writes it
  EXPECT_TRUE(j["max_concurrency"].is_null());
  EXPECT_DOUBLE_EQ(j["request_goodput"].get<double>(), 1.0);
  EXPECT_NEAR(j["mean_ttft_ms"].get<double>(), 100, 1e-9);
  EXPECT_NEAR(j["mean_tpot_ms"].get<double>(), 100, 1e-9);
  for (const char* array :
       {"input_lens", "output_lens", "ttfts", "itls", "errors", "start_times", "tpots", "e2els"}) {
    ASSERT_TRUE(j[array].is_array()) << array;
    EXPECT_EQ(j[array].size(), 2u) << array;
  }
  EXPECT_EQ(j["itls"][0].size(), 2u);
  EXPECT_EQ(j["errors"][0], "");
  EXPECT_EQ(j["errors"][1], "UNAVAILABLE: no replica");
}

TEST(FormatServeReport, PrintsTheVllmTable) {
  const std::vector<RequestRecord> records = Records();
  const std::string table =
      FormatServeReport(Description(), ComputeMetrics(records, 1.0, Description().slo));
  for (const char* line :
       {"Serving Benchmark Result", "Successful requests:", "Failed requests:",
        "Benchmark duration (s):", "Total input tokens:", "Total generated tokens:",
        "Request throughput (req/s):", "Request goodput (req/s, ttft:200):",
        "Output token throughput (tok/s):", "Total token throughput (tok/s):",
        "Time to First Token", "Mean TTFT (ms):", "Median TTFT (ms):", "P90 TTFT (ms):",
        "P99 TTFT (ms):", "Time per Output Token (excl. 1st token)", "Inter-token Latency",
        "End-to-end Latency", "P99 E2EL (ms):"}) {
    EXPECT_THAT(table, HasSubstr(line));
  }
}

TEST(ThroughputResultJson, HasVllmThroughputKeys) {
  const ThroughputRun run{.elapsed_s = 2, .input_lens = {10, 30}, .output_lens = {5, 15}};
  const nlohmann::json j = ThroughputResultJson(Description(), run);
  EXPECT_DOUBLE_EQ(j["elapsed_time"].get<double>(), 2);
  EXPECT_EQ(j["num_requests"], 2);
  EXPECT_EQ(j["total_num_tokens"], 60);
  EXPECT_DOUBLE_EQ(j["requests_per_second"].get<double>(), 1);
  EXPECT_DOUBLE_EQ(j["tokens_per_second"].get<double>(), 30);
  EXPECT_DOUBLE_EQ(j["output_throughput"].get<double>(), 10);
  EXPECT_EQ(j["total_output_tokens"], 20);
  EXPECT_THAT(FormatThroughputReport(Description(), run), HasSubstr("Request throughput (req/s):"));
  EXPECT_FALSE(j.contains("decode_throughput"));  // not timed
}

// A timed run adds its decode rate: 4 + 14 tokens after the firsts over the union [1, 2] ∪
// [1.5, 3.5] = 2.5 s; TPOTs 0.25 and 2 / 14 s.
TEST(ThroughputResultJson, AddsTheDecodeRateOfATimedRun) {
  const ThroughputRun run{
      .elapsed_s = 4,
      .input_lens = {10, 30},
      .output_lens = {5, 15},
      .decode_spans = {{.first_token_s = 1, .last_token_s = 2, .output_tokens = 5},
                       {.first_token_s = 1.5, .last_token_s = 3.5, .output_tokens = 15}}};
  const nlohmann::json j = ThroughputResultJson(Description(), run);
  EXPECT_DOUBLE_EQ(j["decode_throughput"].get<double>(), 18 / 2.5);
  EXPECT_DOUBLE_EQ(j["mean_tpot_ms"].get<double>(), (250 + 2000.0 / 14) / 2);
  EXPECT_EQ(j["tpots"].size(), 2u);
  const std::string table = FormatThroughputReport(Description(), run);
  EXPECT_THAT(table, HasSubstr("Decode token throughput (tok/s):         7.20"));
  EXPECT_THAT(table, HasSubstr("Mean TPOT (ms):"));
}

TEST(FormatComparison, PrintsBothSidesWithRatios) {
  const nlohmann::json a = {
      {"backend", "grpc"}, {"request_throughput", 2.0}, {"mean_ttft_ms", 100.0}, {"completed", 50},
      {"num_prompts", 50}, {"ttfts", {0.1, 0.2}},       {"only_in_a", 1.0}};
  const nlohmann::json b = {{"backend", "http"},    {"request_throughput", 3.0},
                            {"mean_ttft_ms", 50.0}, {"completed", 50},
                            {"num_prompts", 50},    {"ttfts", {0.1, 0.2}}};
  const std::string table = FormatComparison(a, b, "a.json", "b.json");
  const auto line = [&](const std::string& key) {
    const size_t at = table.find(key);
    EXPECT_NE(at, std::string::npos) << key;
    return table.substr(at, table.find('\n', at) - at);
  };
  EXPECT_THAT(table, HasSubstr("a.json"));
  EXPECT_THAT(table, HasSubstr("b.json"));
  EXPECT_THAT(line("request_throughput"), HasSubstr("1.50x"));
  EXPECT_THAT(line("mean_ttft_ms"), HasSubstr("0.50x"));
  EXPECT_THAT(line("completed"), HasSubstr("1.00x"));
  EXPECT_THAT(line("backend"), HasSubstr("grpc"));
  EXPECT_THAT(line("backend"), HasSubstr("http"));
  EXPECT_THAT(line("num_prompts"), ::testing::Not(HasSubstr("x")));  // a setting: no ratio
  EXPECT_THAT(line("only_in_a"), HasSubstr("-"));
  EXPECT_EQ(table.find("ttfts"), std::string::npos);  // per-request arrays are left out
}

}  // namespace
}  // namespace pagoda
