// `pagoda bench` as a user runs it: flag validation that names the flag, an offline throughput
// run on stories260K with its --result-json, and `compare`.
#include "tools/bench_command.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/stories260k.h"
#include "tools/bench/bench_flags.h"

namespace pagoda {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::vector<const char*> Argv(const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  return argv;
}

absl::Status ServeFlagsError(std::vector<std::string> args) {
  const std::vector<const char*> argv = Argv(args);
  return ParseServeBenchFlags(static_cast<int>(argv.size()), argv.data()).status();
}

absl::Status ThroughputFlagsError(std::vector<std::string> args) {
  const std::vector<const char*> argv = Argv(args);
  return ParseThroughputBenchFlags(static_cast<int>(argv.size()), argv.data()).status();
}

int RunBench(const std::vector<std::string>& args) {
  const std::vector<const char*> argv = Argv(args);
  return RunBenchCommand(static_cast<int>(argv.size()), argv.data());
}

nlohmann::json ReadJson(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
}

TEST(BenchFlags, ServeDefaultsAreValid) {
  const std::vector<std::string> args = {"--target", "grpc://127.0.0.1:50051"};
  const std::vector<const char*> argv = Argv(args);
  auto config = ParseServeBenchFlags(static_cast<int>(argv.size()), argv.data());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->target.protocol, BenchTarget::Protocol::kGrpc);
  EXPECT_EQ(config->target.port, 50051);
  EXPECT_TRUE(std::isinf(config->arrivals.request_rate));
  EXPECT_EQ(config->workload.dataset.kind, DatasetKind::kShareGptLike);
  EXPECT_EQ(config->workload.dataset.num_prompts, 1000);
}

TEST(BenchFlags, ServeErrorsNameTheFlag) {
  const std::string target = "--target=http://127.0.0.1:8000";
  const struct {
    std::vector<std::string> args;
    std::string expected;
  } cases[] = {
      {{}, "--target is required"},
      {{"--target", "tcp://127.0.0.1:1"}, "--target must be grpc://HOST:PORT or http://HOST:PORT"},
      {{"--target", "grpc://127.0.0.1"}, "--target"},
      {{"--target", "http://127.0.0.1:70000"}, "--target"},
      {{target, "--request-rate", "0"}, "--request-rate"},
      {{target, "--request-rate", "soon"}, "--request-rate"},
      {{target, "--burstiness", "0"}, "--burstiness must be > 0"},
      {{target, "--max-concurrency", "-1"}, "--max-concurrency"},
      {{target, "--num-prompts", "0"}, "--num-prompts"},
      {{target, "--seed", "-1"}, "--seed"},
      {{target, "--dataset-name", "sharegpt"}, "--dataset-name"},
      {{target, "--dataset-name", "jsonl"}, "--dataset-path is required"},
      {{target, "--dataset-path", "x.jsonl"},
       "--dataset-path applies only to --dataset-name jsonl"},
      {{target, "--random-input-len", "5"},
       "--random-input-len applies only to --dataset-name random"},
      {{target, "--prefix-len", "5"}, "--prefix-len applies only to --dataset-name prefix"},
      {{target, "--dataset-name", "random", "--random-range-ratio", "1"}, "--random-range-ratio"},
      {{target, "--dataset-name", "random", "--random-output-len", "0"}, "--random-output-len"},
      {{target, "--dataset-name", "prefix", "--prefix-num-prompts", "0"}, "--prefix-num-prompts"},
      {{target, "--dataset-name", "prefix", "--suffix-len", "0"}, "--suffix-len"},
      {{target, "--slo", "ttft=5"}, "--slo"},
      {{target, "--temperature", "-1"}, "--temperature"},
      {{target, "--request-timeout-s", "0"}, "--request-timeout-s"},
      {{target, "--max-model-len", "-4"}, "--max-model-len"},
      {{target, "--model-dir", "/nonexistent/model"}, "--model-dir: /nonexistent/model"},
      {{target, "--tokenizer", "/nonexistent/tok"}, "--tokenizer: /nonexistent/tok"},
      {{target, "--plot", "/proc/self/status"}, "--plot"},
      {{target, "--num-prompts", "many"}, "--num-prompts expects an integer"},
      {{target, "--frobnicate"}, "unknown flag --frobnicate"},
      {{target, "--structured-output-ratio", "1.5"}, "--structured-output-ratio"},
      {{target, "--structured-output-ratio", "-0.1"}, "--structured-output-ratio"},
      {{target, "--json-schema", "/proc/self/status"},
       "--json-schema needs --structured-output-ratio"},
      {{target, "--structured-output-ratio", "1", "--json-schema", "/nonexistent/s.json"},
       "--json-schema: cannot read /nonexistent/s.json"},
      {{target, "--structured-output-ratio", "1", "--json-schema", "/proc/self/status"},
       "--json-schema: /proc/self/status is not a JSON object"},
  };
  for (const auto& c : cases) {
    const absl::Status status = ServeFlagsError(c.args);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.expected;
    EXPECT_THAT(status.message(), HasSubstr(c.expected));
  }
}

TEST(BenchFlags, ThroughputErrorsNameTheFlag) {
  const std::string model = "--model=" + testing::Stories260KDir();
  const struct {
    std::vector<std::string> args;
    std::string expected;
  } cases[] = {
      {{}, "--model is required"},
      {{"--model", "/nonexistent/model"}, "--model: /nonexistent/model is not a directory"},
      {{model, "--load-format", "pickle"}, "--load-format"},
      {{model, "--block-size", "0"}, "--block-size"},
      {{model, "--num-gpu-blocks-override", "-1"}, "--num-gpu-blocks-override"},
      {{model, "--kv-cache-memory-gib", "0"}, "--kv-cache-memory-gib"},
      {{model, "--max-num-seqs", "0"}, "--max-num-seqs"},
      {{model, "--max-num-batched-tokens", "0"}, "--max-num-batched-tokens"},
      {{model, "--num-scheduler-steps", "65"}, "--num-scheduler-steps"},
      {{model, "--request-rate", "5"}, "unknown flag --request-rate"},
      {{model, "--dtype", "int4"}, "--dtype must be auto, float32, bfloat16 or float16"},
      {{model, "--kv-cache-dtype", "half"}, "--kv-cache-dtype must be auto"},
  };
  for (const auto& c : cases) {
    const absl::Status status = ThroughputFlagsError(c.args);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.expected;
    EXPECT_THAT(status.message(), HasSubstr(c.expected));
  }
}

class BenchCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("pagoda_bench_cmd_" + std::to_string(getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  fs::path dir_;
};

TEST_F(BenchCommandTest, ThroughputRunsEveryRequestAndWritesItsJson) {
  ASSERT_EQ(
      RunBench({"throughput", "--model", testing::Stories260KDir(), "--dataset-name", "random",
                "--num-prompts", "20", "--random-input-len", "32", "--random-output-len", "8",
                "--ignore-eos", "--seed", "3", "--result-json", Path("tp.json")}),
      0);
  const nlohmann::json j = ReadJson(Path("tp.json"));
  ASSERT_TRUE(j.is_object());
  for (const char* key :
       {"elapsed_time", "num_requests", "total_num_tokens", "requests_per_second",
        "tokens_per_second", "completed", "total_input_tokens", "total_output_tokens",
        "request_throughput", "output_throughput", "total_token_throughput", "input_lens",
        "output_lens", "num_prompts", "seed", "dataset_name", "backend"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_EQ(j["num_requests"], 20);
  EXPECT_EQ(j["total_output_tokens"], 20 * 8);  // ignore_eos: every request runs its length
  const int64_t input = j["total_input_tokens"];
  EXPECT_NEAR(static_cast<double>(input), 20 * 32, 20);
  EXPECT_EQ(j["total_num_tokens"], input + 20 * 8);
  EXPECT_EQ(j["backend"], "engine");
  // Every request was timed: 20 TPOTs within the run, and a decode rate.
  ASSERT_EQ(j["tpots"].size(), 20u);
  for (const nlohmann::json& tpot : j["tpots"]) {
    EXPECT_GT(tpot.get<double>(), 0);
    EXPECT_LT(tpot.get<double>() * 7, j["elapsed_time"].get<double>());
  }
  EXPECT_GT(j["decode_throughput"].get<double>(), 0);
}

// The model flags: bfloat16 weights and KV cache run the same workload.
TEST_F(BenchCommandTest, ThroughputRunsWithBfloat16WeightsAndKvCache) {
  ASSERT_EQ(RunBench({"throughput", "--model", testing::Stories260KDir(), "--dataset-name",
                      "random", "--num-prompts", "4", "--random-input-len", "16",
                      "--random-output-len", "4", "--ignore-eos", "--dtype", "bfloat16",
                      "--kv-cache-dtype", "bfloat16", "--result-json", Path("bf16.json")}),
            0);
  const nlohmann::json j = ReadJson(Path("bf16.json"));
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j["total_output_tokens"], 4 * 4);
}

TEST_F(BenchCommandTest, CompareReadsTwoResultFiles) {
  std::ofstream(Path("a.json")) << R"({"request_throughput": 4.0, "mean_ttft_ms": 10.0})";
  std::ofstream(Path("b.json")) << R"({"request_throughput": 5.0, "mean_ttft_ms": 30.0})";
  ::testing::internal::CaptureStdout();
  const int exit = RunBench({"compare", Path("a.json"), Path("b.json")});
  const std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(exit, 0);
  EXPECT_THAT(out, HasSubstr("1.25x"));
  EXPECT_THAT(out, HasSubstr("3.00x"));

  EXPECT_EQ(RunBench({"compare", Path("a.json"), Path("missing.json")}), 2);
  std::ofstream(Path("bad.json")) << "not json";
  EXPECT_EQ(RunBench({"compare", Path("a.json"), Path("bad.json")}), 2);
  EXPECT_EQ(RunBench({"compare", Path("a.json")}), 2);
}

TEST_F(BenchCommandTest, UnknownModeAndBadFlagsExitWithTwo) {
  EXPECT_EQ(RunBench({"frobnicate"}), 2);
  EXPECT_EQ(RunBench({"serve", "--target", "ftp://x:1"}), 2);
  EXPECT_EQ(RunBench({"throughput", "--model", testing::Stories260KDir(), "--dataset-name", "jsonl",
                      "--dataset-path", Path("missing.jsonl")}),
            2);
  EXPECT_EQ(RunBench({"serve", "--help"}), 0);
}

}  // namespace
}  // namespace pagoda
