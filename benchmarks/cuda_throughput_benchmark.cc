// Offline throughput of 1000 ShareGPT-like requests on the Llama-3-8B-shaped model
// (benchmarks/llama3_8b_config.h) with dummy bf16 weights on the CUDA device (issue 16): what
// `pagoda bench throughput --device cuda --load-format dummy --dtype bfloat16 --dataset-name
// sharegpt-like --num-prompts 1000 --ignore-eos` runs — an EngineLoop over an InProcessExecutor,
// every request handed over at once, the wall time of RunToCompletion (loading excluded) — built
// into a benchmark binary because the `pagoda` binary (gRPC, protobuf, Prometheus) is not
// bundled for the device machine.
//
// Requests: the lengths of `pagoda bench throughput`'s sharegpt-like dataset at --seed 0
// (ShareGptLikeWorkload::SampleLengths: log-normal, means near 200 prompt and 180 output tokens,
// prompt <= 1024, prompt + output <= 2048), prompt ids pseudo-random in [3, vocab) instead of
// corpus text (the model's speed does not depend on them); greedy, ignore_eos, so every request
// produces exactly its output length. Engine defaults (max_num_seqs 256, 4096 batched tokens,
// chunked prefill, async output); bf16 KV cache in 90% of the device memory free before loading,
// less the weights and 4 GiB of room for activations.
//
//   build/benchmarks/cuda_throughput_benchmark [--num_requests=1000]
//       [--requests_out=requests.jsonl]   # also write the requests for the HF baseline
//   build/benchmarks/cuda_throughput_benchmark --tiny_cpu --num_requests=20   # a check, no device
//
// --tiny_cpu runs the same code on a model of the same family shrunk to 2 layers of hidden 64
// (benchmarks/llama3_8b_config.h) on the CPU, with a KV cache of 4096 blocks: a check of the
// benchmark itself where no device is; its figures mean nothing.
//
// Prints `pagoda_throughput: requests=... output_tokens=... elapsed_s=... requests_per_s=...
// output_tokens_per_s=... total_tokens_per_s=...` (scripts/gpu-check.sh reads it) and the same
// as benchmark counters; while it runs, a `pagoda_throughput_progress:` line every 20 s (steps
// and decode tokens so far). --requests_out writes one JSON object per line, {"prompt_token_ids":
// [...], "output_len": n} (benchmarks/hf_generate_baseline.py --requests), also without a device.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "benchmarks/llama3_8b_config.h"
#include "common/model_config.h"
#include "common/tokenizer/tokenizer.h"
#include "engine/engine_loop.h"
#include "kernels/cuda/device_memory.h"
#include "nlohmann/json.hpp"
#include "tools/bench/sharegpt_like.h"
#include "tools/bench/synthetic_tokenizer.h"
#include "worker/in_process_executor.h"
#include "worker/model_weights.h"

namespace pagoda {
namespace {

constexpr int64_t kBlockSize = 16;
constexpr int64_t kActivationRoom = int64_t{4} << 30;
constexpr int64_t kCpuCheckBlocks = 4096;  // --tiny_cpu

[[noreturn]] void Die(const absl::Status& status) {
  std::fprintf(stderr, "cuda_throughput_benchmark: %s\n", status.ToString().c_str());
  std::exit(1);
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

// The benchmark's requests: sharegpt-like lengths at seed 0, ids from their own seeded stream.
std::vector<EngineRequest> Requests(int64_t count, int64_t vocab_size) {
  const std::vector<SyntheticLengths> lengths =
      ShareGptLikeWorkload({.seed = 0}).SampleLengths(count);
  std::mt19937_64 ids(12345);
  std::uniform_int_distribution<int32_t> token(3, static_cast<int32_t>(vocab_size - 1));
  std::vector<EngineRequest> requests;
  requests.reserve(lengths.size());
  for (size_t i = 0; i < lengths.size(); ++i) {
    EngineRequest r{.request_id = absl::StrCat("r", i)};
    for (int64_t t = 0; t < lengths[i].prompt_len; ++t) r.prompt_token_ids.push_back(token(ids));
    r.params.temperature = 0;
    r.params.max_tokens = static_cast<int32_t>(lengths[i].output_len);
    r.params.ignore_eos = true;
    requests.push_back(std::move(r));
  }
  return requests;
}

void WriteRequests(const std::string& path, const std::vector<EngineRequest>& requests) {
  std::FILE* out = std::fopen(path.c_str(), "w");
  if (out == nullptr) Die(absl::NotFoundError(absl::StrCat("cannot write ", path)));
  for (const EngineRequest& r : requests) {
    const nlohmann::json line = {{"prompt_token_ids", r.prompt_token_ids},
                                 {"output_len", r.params.max_tokens}};
    std::fprintf(out, "%s\n", line.dump().c_str());
  }
  if (std::fclose(out) != 0) Die(absl::InternalError(absl::StrCat("cannot write ", path)));
}

// `count` requests through the engine on `device` (the model's shape: `config`).
void BM_OfflineThroughput(benchmark::State& state, int64_t count, const ModelConfig& config,
                          Device device) {
  const std::vector<EngineRequest> requests = Requests(count, config.vocab_size);
  int64_t prompt_tokens = 0, output_tokens = 0;
  for (const EngineRequest& r : requests) {
    prompt_tokens += static_cast<int64_t>(r.prompt_token_ids.size());
    output_tokens += r.params.max_tokens;
  }
  const Tokenizer& tokenizer = SyntheticTokenizer(config.vocab_size);
  for (auto _ : state) {
    ModelWeights weights = DummyModelWeights(config, /*seed=*/0, {}, {.dtype = DType::kBF16});
    int64_t num_blocks = kCpuCheckBlocks;
    if (device == Device::kCuda) {
      absl::StatusOr<kernels::cuda::DeviceMemoryInfo> memory = kernels::cuda::MemoryInfo();
      if (!memory.ok()) Die(memory.status());
      const int64_t budget = static_cast<int64_t>(0.9 * static_cast<double>(memory->free_bytes)) -
                             weights.num_bytes() - kActivationRoom;
      num_blocks = budget > 0 ? InProcessExecutor::NumBlocksForBudget(config, kBlockSize, budget,
                                                                      {}, DType::kBF16)
                              : 0;
      if (num_blocks < 1) {
        Die(absl::ResourceExhaustedError(
            absl::StrCat("no room for a KV cache: ", memory->free_bytes, " bytes free, ",
                         weights.num_bytes(), " of weights")));
      }
    }
    auto executor = InProcessExecutor::Create(config, std::move(weights),
                                              {.num_device_blocks = num_blocks,
                                               .block_size = kBlockSize,
                                               .kv_cache_dtype = DType::kBF16,
                                               .device = device});
    if (!executor.ok()) Die(executor.status());
    auto engine = EngineLoop::Create(EngineConfig{}, std::move(*executor), &tokenizer, {});
    if (!engine.ok()) Die(engine.status());
    const auto start = std::chrono::steady_clock::now();
    // A line every 20 s, so that a run stopped by gpu-check's time limit still shows its pace.
    struct Progress {
      int64_t steps = 0, decode_tokens = 0;
      std::chrono::steady_clock::time_point last_line;
    } progress{.last_line = start};
    (*engine)->SetStepObserver([&progress, start](const StepStats& step) {
      ++progress.steps;
      progress.decode_tokens += step.num_decode_tokens;
      const auto now = std::chrono::steady_clock::now();
      if (now - progress.last_line < std::chrono::seconds(20)) return;
      progress.last_line = now;
      const double elapsed = std::chrono::duration<double>(now - start).count();
      std::printf(
          "pagoda_throughput_progress: elapsed_s=%.0f steps=%lld decode_tokens=%lld "
          "decode_tokens_per_s=%.1f\n",
          elapsed, static_cast<long long>(progress.steps),
          static_cast<long long>(progress.decode_tokens),
          static_cast<double>(progress.decode_tokens) / elapsed);
      std::fflush(stdout);
    });
    auto results = (*engine)->RunToCompletion(requests);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    (*engine)->SetStepObserver({});  // before `progress` goes
    if (!results.ok()) Die(results.status());
    int64_t produced = 0;
    for (const RequestOutput& out : *results) {
      produced += static_cast<int64_t>(out.outputs[0].token_ids.size());
    }
    if (produced != output_tokens) {
      Die(absl::InternalError(
          absl::StrCat("produced ", produced, " output tokens, expected ", output_tokens)));
    }
    state.SetIterationTime(seconds);
    std::printf(
        "pagoda_throughput: requests=%zu output_tokens=%lld prompt_tokens=%lld kv_blocks=%lld "
        "elapsed_s=%.3f requests_per_s=%.3f output_tokens_per_s=%.1f total_tokens_per_s=%.1f\n",
        requests.size(), static_cast<long long>(output_tokens),
        static_cast<long long>(prompt_tokens), static_cast<long long>(num_blocks), seconds,
        static_cast<double>(requests.size()) / seconds,
        static_cast<double>(output_tokens) / seconds,
        static_cast<double>(prompt_tokens + output_tokens) / seconds);
    std::fflush(stdout);
  }
  const double runs = static_cast<double>(state.iterations());
  state.counters["requests_per_s"] =
      benchmark::Counter(runs * static_cast<double>(requests.size()), benchmark::Counter::kIsRate);
  state.counters["output_tokens_per_s"] =
      benchmark::Counter(runs * static_cast<double>(output_tokens), benchmark::Counter::kIsRate);
  state.counters["output_tokens"] = static_cast<double>(output_tokens);
}

}  // namespace
}  // namespace pagoda

int main(int argc, char** argv) {
  // --num_requests=N and --requests_out=PATH (ours) are taken out before Google Benchmark sees
  // the flags.
  int64_t num_requests = 1000;
  std::string requests_out;
  bool tiny_cpu = false;
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg.substr(0, 15) == "--num_requests=") {
      if (!absl::SimpleAtoi(std::string(arg.substr(15)), &num_requests) || num_requests < 1) {
        std::fprintf(stderr, "cuda_throughput_benchmark: --num_requests takes a count >= 1\n");
        return 1;
      }
    } else if (arg.substr(0, 15) == "--requests_out=") {
      requests_out = std::string(arg.substr(15));
    } else if (arg == "--tiny_cpu") {
      tiny_cpu = true;
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  if (!requests_out.empty()) {
    pagoda::WriteRequests(requests_out,
                          pagoda::Requests(num_requests, pagoda::Llama3_8BConfig().vocab_size));
  }
  if (!tiny_cpu && pagoda::kernels::cuda::DeviceCount() == 0) {
    std::printf("cuda_throughput_benchmark: no CUDA device; nothing to measure\n");
    return 0;
  }
  const pagoda::ModelConfig config =
      tiny_cpu ? pagoda::TinyLlama3Config() : pagoda::Llama3_8BConfig();
  const pagoda::Device device = tiny_cpu ? pagoda::Device::kCpu : pagoda::Device::kCuda;
  // One run of the whole workload (minutes): gpu-check's --benchmark_repetitions does not apply.
  benchmark::RegisterBenchmark("BM_OfflineThroughput", pagoda::BM_OfflineThroughput, num_requests,
                               config, device)
      ->Iterations(1)
      ->Repetitions(1)
      ->UseManualTime()
      ->Unit(benchmark::kSecond);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
