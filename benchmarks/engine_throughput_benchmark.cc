// Offline throughput of 200 ShareGPT-like requests (seeded) through the EngineLoop over an
// InProcessExecutor running a dummy SmolLM2-135M-shaped model on the CPU, in one run:
// continuous vs static batching (SchedulerKind::kStatic: worst-case reservation, fixed waves),
// multi-step k = 1 vs 8, async output processing on vs off.
//
// Lengths are the ShareGptLikeWorkload's (seed 1, means ~200 prompt / ~180 output tokens)
// divided by kLengthDivisor (prompt >= 4, output >= 1 tokens) so one configuration runs in
// well under a minute on two CPU cores; every request runs to its output length (ignore_eos).
// Times are wall clock of RunToCompletion only (engine and executor built outside it).
//
//   build/benchmarks/engine_throughput_benchmark
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmarks/smollm2_config.h"
#include "common/model_config.h"
#include "common/tokenizer/tokenizer.h"
#include "engine/engine_loop.h"
#include "tools/bench/sharegpt_like.h"
#include "tools/bench/synthetic_tokenizer.h"
#include "worker/in_process_executor.h"
#include "worker/model_weights.h"

namespace pagoda {
namespace {

constexpr int64_t kNumRequests = 200;
constexpr int32_t kLengthDivisor = 8;
constexpr int64_t kBlockSize = 16;
constexpr int64_t kNumDeviceBlocks = 2048;  // 32768 token slots, ~1.5 GB of fp32 KV

void Die(const absl::Status& status) {
  std::fprintf(stderr, "engine_throughput_benchmark: %s\n", std::string(status.message()).c_str());
  std::abort();
}

// The model's ids as "t<id>" tokens (tools/bench/synthetic_tokenizer.h), made once.
const Tokenizer& SyntheticTokenizer(int64_t vocab_size) {
  static const Tokenizer* tokenizer = [vocab_size] {
    auto made = MakeSyntheticTokenizer(vocab_size);
    if (!made.ok()) Die(made.status());
    return made->release();
  }();
  return *tokenizer;
}

std::vector<EngineRequest> Requests(int64_t vocab_size) {
  const std::vector<SyntheticRequest> workload =
      ShareGptLikeWorkload({.seed = 1, .vocab_size = vocab_size}).Sample(kNumRequests);
  std::vector<EngineRequest> requests;
  for (size_t i = 0; i < workload.size(); ++i) {
    const SyntheticRequest& w = workload[i];
    const size_t prompt_len = std::max<size_t>(4, w.prompt_token_ids.size() / kLengthDivisor);
    EngineRequest r{.request_id = absl::StrCat("r", i),
                    .prompt_token_ids = std::vector<int32_t>(
                        w.prompt_token_ids.begin(),
                        w.prompt_token_ids.begin() + static_cast<std::ptrdiff_t>(std::min(
                                                         prompt_len, w.prompt_token_ids.size())))};
    r.params.temperature = 0;
    r.params.max_tokens = std::max(1, w.output_len / kLengthDivisor);
    r.params.ignore_eos = true;
    requests.push_back(std::move(r));
  }
  return requests;
}

// Args: {static (0/1), num_scheduler_steps, async_output (0/1)}.
void BM_EngineThroughput(benchmark::State& state) {
  const ModelConfig config = SmolLm2Config();
  const bool is_static = state.range(0) != 0;
  const EngineConfig engine_config{
      .num_scheduler_steps = static_cast<int32_t>(state.range(1)),
      .async_output = state.range(2) != 0,
      .scheduler = is_static ? SchedulerKind::kStatic : SchedulerKind::kContinuous};
  const std::vector<EngineRequest> requests = Requests(config.vocab_size);
  int64_t output_tokens = 0;
  for (const EngineRequest& r : requests) output_tokens += r.params.max_tokens;

  for (auto _ : state) {
    auto executor = InProcessExecutor::Create(
        config, DummyModelWeights(config, /*seed=*/0),
        {.num_device_blocks = kNumDeviceBlocks, .block_size = kBlockSize});
    if (!executor.ok()) Die(executor.status());
    auto engine = EngineLoop::Create(engine_config, std::move(*executor),
                                     &SyntheticTokenizer(config.vocab_size), {});
    if (!engine.ok()) Die(engine.status());
    const auto start = std::chrono::steady_clock::now();
    auto results = (*engine)->RunToCompletion(requests);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!results.ok()) Die(results.status());
    int64_t produced = 0;
    for (const RequestOutput& out : *results) produced += out.outputs[0].token_ids.size();
    if (produced != output_tokens) Die(absl::InternalError("unexpected output token count"));
    state.SetIterationTime(seconds);
  }
  const double runs = static_cast<double>(state.iterations());
  state.counters["requests_per_s"] =
      benchmark::Counter(runs * static_cast<double>(requests.size()), benchmark::Counter::kIsRate);
  state.counters["output_tokens_per_s"] =
      benchmark::Counter(runs * static_cast<double>(output_tokens), benchmark::Counter::kIsRate);
  state.counters["output_tokens"] = static_cast<double>(output_tokens);
  state.SetLabel(absl::StrCat(is_static ? "static" : "continuous", ", k=", state.range(1),
                              ", async ", state.range(2) != 0 ? "on" : "off"));
}

BENCHMARK(BM_EngineThroughput)
    ->ArgNames({"static", "steps", "async"})
    ->Args({0, 1, 1})
    ->Args({0, 8, 1})
    ->Args({0, 1, 0})
    ->Args({0, 8, 0})
    ->Args({1, 1, 1})
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kSecond);

}  // namespace
}  // namespace pagoda
