// The structured-output share of `pagoda bench serve`: which requests carry the schema, the
// default schema (the server's compiler accepts it), and what the outputs are counted as.
#include "tools/bench/structured_workload.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "structured/json_schema_grammar.h"

namespace pagoda {
namespace {

using ::testing::HasSubstr;

std::vector<bool> Constrained(double ratio, size_t n) {
  std::vector<BenchRequest> requests(n);
  ConstrainShare(ratio, "{}", requests);
  std::vector<bool> out;
  for (const BenchRequest& r : requests) out.push_back(!r.json_schema.empty());
  return out;
}

TEST(StructuredWorkload, TheShareIsExactAndSpreadEvenly) {
  EXPECT_THAT(Constrained(0, 4), ::testing::Each(false));
  EXPECT_THAT(Constrained(1, 4), ::testing::Each(true));
  EXPECT_EQ(Constrained(0.5, 6), (std::vector<bool>{false, true, false, true, false, true}));
  for (const double ratio : {0.1, 0.25, 0.3, 0.5, 0.75, 0.9}) {
    const std::vector<bool> c = Constrained(ratio, 1000);
    const auto count = std::count(c.begin(), c.end(), true);
    EXPECT_EQ(count, static_cast<int64_t>(std::floor(1000 * ratio + 1e-9))) << ratio;
    // Evenly: every window of 100 requests holds the share, give or take one.
    for (size_t begin = 0; begin + 100 <= c.size(); begin += 100) {
      const auto window = std::count(c.begin() + begin, c.begin() + begin + 100, true);
      EXPECT_NEAR(static_cast<double>(window), 100 * ratio, 1.0) << ratio << " at " << begin;
    }
  }
}

TEST(StructuredWorkload, TheDefaultSchemaCompiles) {
  const absl::StatusOr<std::string> schema = LoadBenchJsonSchema("");
  ASSERT_TRUE(schema.ok()) << schema.status();
  EXPECT_EQ(*schema, DefaultBenchJsonSchema());
  EXPECT_TRUE(nlohmann::json::parse(*schema).is_object());
  const absl::StatusOr<std::string> gbnf = structured::JsonSchemaToGbnf(*schema);
  EXPECT_TRUE(gbnf.ok()) << gbnf.status();
}

TEST(StructuredWorkload, ASchemaFileIsReadOrRefusedByName) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path();
  const std::string good = (dir / "pagoda_bench_schema_good.json").string();
  const std::string bad = (dir / "pagoda_bench_schema_bad.json").string();
  std::ofstream(good) << R"({ "type": "object", "properties": { "a": {"type": "integer"} } })";
  std::ofstream(bad) << R"(["not", "an", "object"])";
  const absl::StatusOr<std::string> read = LoadBenchJsonSchema(good);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, R"({"properties":{"a":{"type":"integer"}},"type":"object"})");
  const absl::StatusOr<std::string> refused = LoadBenchJsonSchema(bad);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr(bad));
  EXPECT_THAT(LoadBenchJsonSchema("/nonexistent/x.json").status().message(),
              HasSubstr("--json-schema: cannot read /nonexistent/x.json"));
  std::filesystem::remove(good);
  std::filesystem::remove(bad);
}

RequestRecord Record(bool constrained, std::string text, std::string finish, double tpot_s) {
  RequestRecord r;
  r.success = true;
  r.constrained = constrained;
  r.output_text = std::move(text);
  r.finish_reason = std::move(finish);
  r.output_tokens = 11;
  r.ttft_s = 1;
  r.latency_s = 1 + 10 * tpot_s;
  return r;
}

TEST(StructuredWorkload, OutputsAreCountedPerGroup) {
  std::vector<RequestRecord> records = {
      Record(true, R"({"title": "x"})", "stop", 0.020),
      Record(true, R"({"title": "unfini)", "length", 0.030),
      Record(true, R"([1, 2])", "stop", 0.040),  // JSON, but not an object
      Record(false, "free text", "length", 0.010),
      Record(false, "more text", "stop", 0.020),
  };
  RequestRecord failed = Record(true, "", "", 0.5);
  failed.success = false;
  records.push_back(failed);
  const StructuredOutputStats stats = SummarizeStructuredOutputs(records);
  EXPECT_EQ(stats.constrained, 3);
  EXPECT_EQ(stats.valid_json, 1);
  EXPECT_EQ(stats.hit_max_tokens, 1);
  EXPECT_NEAR(stats.constrained_tpot_ms, 30, 1e-9);
  EXPECT_NEAR(stats.unconstrained_tpot_ms, 15, 1e-9);

  nlohmann::json result;
  AddStructuredOutputJson(0.5, stats, result);
  EXPECT_EQ(result["structured_output_ratio"], 0.5);
  EXPECT_EQ(result["constrained_completed"], 3);
  EXPECT_EQ(result["constrained_valid_json"], 1);
  EXPECT_THAT(FormatStructuredOutputReport(stats), HasSubstr("Constrained requests"));
}

}  // namespace
}  // namespace pagoda
