// `pagoda bench serve` against a real `pagoda serve` cluster of stories260K (2 replicas, tp 1):
// runs over gRPC and over HTTP finish without failures, and the token totals they report (the
// server's usage) equal the growth of the server's own Prometheus counters, summed over replicas;
// --plot draws its PNG charts.
#include <httplib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/integration/serve_cluster.h"
#include "tests/testing/stories260k.h"
#include "tools/bench_command.h"

namespace pagoda {
namespace {

namespace fs = std::filesystem;
using testing::ServeCluster;

struct TokenCounters {
  double prompt = 0;
  double generation = 0;
};

// pagoda:prompt_tokens_total and pagoda:generation_tokens_total from GET /metrics on the
// router's HTTP port, summed over every label set (replicas).
TokenCounters ScrapeTokenCounters(int http_port) {
  httplib::Client client("127.0.0.1", http_port);
  const httplib::Result result = client.Get("/metrics");
  TokenCounters counters;
  EXPECT_TRUE(result && result->status == 200) << "GET /metrics failed";
  if (!result) return counters;
  std::istringstream lines(result->body);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    const std::string name = line.substr(0, line.find_first_of("{ "));
    double value = 0;
    if (space == std::string::npos || !absl::SimpleAtod(line.substr(space + 1), &value)) continue;
    if (name == "pagoda:prompt_tokens_total") counters.prompt += value;
    if (name == "pagoda:generation_tokens_total") counters.generation += value;
  }
  return counters;
}

int RunBench(const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  return RunBenchCommand(static_cast<int>(argv.size()), argv.data());
}

class BenchServeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto cluster = ServeCluster::Start({.replicas = 2, .tp = 1});
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = cluster->release();
    dir_ = new fs::path(fs::temp_directory_path() /
                        ("pagoda_bench_serve_" + std::to_string(getpid())));
    fs::create_directories(*dir_);
  }
  static void TearDownTestSuite() {
    delete cluster_;
    fs::remove_all(*dir_);
    delete dir_;
  }

  // Runs `pagoda bench serve` with `args` and checks its result file against the counters.
  static void RunAndCheck(const std::vector<std::string>& args, const std::string& name) {
    ASSERT_NE(cluster_, nullptr);
    const std::string result_path = (*dir_ / (name + ".json")).string();
    const TokenCounters before = ScrapeTokenCounters(cluster_->http_port());
    std::vector<std::string> full = {
        "serve",  "--model-dir", testing::Stories260KDir(), "--num-prompts", "50",
        "--seed", "1",           "--result-json",           result_path};
    full.insert(full.end(), args.begin(), args.end());
    ASSERT_EQ(RunBench(full), 0);
    const TokenCounters after = ScrapeTokenCounters(cluster_->http_port());

    std::ifstream in(result_path);
    const nlohmann::json result = nlohmann::json::parse(in, nullptr, false);
    ASSERT_TRUE(result.is_object());
    EXPECT_EQ(result["completed"], 50);
    EXPECT_EQ(result["failed"], 0);
    EXPECT_THAT(result["errors"], ::testing::Each(""));
    const int64_t input = result["total_input_tokens"];
    const int64_t output = result["total_output_tokens"];
    EXPECT_GT(input, 50 * 4);
    EXPECT_GT(output, 0);
    EXPECT_EQ(static_cast<double>(input), after.prompt - before.prompt);
    EXPECT_EQ(static_cast<double>(output), after.generation - before.generation);
    int64_t summed = 0;
    for (const nlohmann::json& len : result["output_lens"]) summed += len.get<int64_t>();
    EXPECT_EQ(summed, output);
    EXPECT_EQ(result["ttfts"].size(), 50u);
    EXPECT_EQ(result["model_id"], fs::path(testing::Stories260KDir()).filename().string());
  }

  static ServeCluster* cluster_;
  static fs::path* dir_;
};

ServeCluster* BenchServeTest::cluster_ = nullptr;
fs::path* BenchServeTest::dir_ = nullptr;

TEST_F(BenchServeTest, GrpcRunMatchesTheServersTokenCounters) {
  const fs::path plots = *dir_ / "plots";
  RunAndCheck({"--target", "grpc://" + cluster_->target(), "--request-rate", "200", "--plot",
               plots.string()},
              "grpc");
  // --plot draws with tools/bench/plot_bench.py (python3-matplotlib).
  EXPECT_GT(fs::file_size(plots / "latency_cdf.png"), 0u);
  EXPECT_GT(fs::file_size(plots / "throughput.png"), 0u);
}

TEST_F(BenchServeTest, HttpRunMatchesTheServersTokenCounters) {
  // The router's HTTP server (cpp-httplib) listens with a backlog of 5 connections, so 50
  // connections opened at once can be reset before it accepts them; at most 4 in flight keeps
  // this a test of the client and the counters.
  RunAndCheck({"--target", "http://127.0.0.1:" + std::to_string(cluster_->http_port()),
               "--dataset-name", "random", "--random-input-len", "64", "--random-output-len", "32",
               "--random-range-ratio", "0.5", "--ignore-eos", "--max-concurrency", "4"},
              "http");
}

TEST_F(BenchServeTest, HalfTheRequestsFollowAJsonSchemaOnBothProtocols) {
  // A small object, so stories260K's outputs end within max_tokens.
  const std::string schema = (*dir_ / "schema.json").string();
  std::ofstream(schema) << R"({"type": "object", "properties": {"n": {"type": "integer",
      "minimum": 1, "maximum": 9}}, "required": ["n"], "additionalProperties": false})";
  for (const std::string& target : {"grpc://" + cluster_->target(),
                                    "http://127.0.0.1:" + std::to_string(cluster_->http_port())}) {
    const std::string name = target.substr(0, 4) + "_structured";
    RunAndCheck({"--target", target, "--dataset-name", "random", "--random-input-len", "32",
                 "--random-output-len", "48", "--max-concurrency", "4", "--temperature", "0.8",
                 "--structured-output-ratio", "0.5", "--json-schema", schema},
                name);
    std::ifstream in(*dir_ / (name + ".json"));
    const nlohmann::json result = nlohmann::json::parse(in, nullptr, false);
    ASSERT_TRUE(result.is_object()) << target;
    EXPECT_EQ(result["structured_output_ratio"], 0.5);
    EXPECT_EQ(result["constrained_completed"], 25) << target;
    // Every output that ended on its own ended where the schema's object did.
    const int64_t valid = result["constrained_valid_json"];
    const int64_t cut = result["constrained_hit_max_tokens"];
    EXPECT_GT(valid, 0) << target;
    EXPECT_GE(valid + cut, 25) << target;
    EXPECT_GT(result["mean_constrained_tpot_ms"].get<double>(), 0) << target;
    EXPECT_GT(result["mean_unconstrained_tpot_ms"].get<double>(), 0) << target;
  }
}

}  // namespace
}  // namespace pagoda
