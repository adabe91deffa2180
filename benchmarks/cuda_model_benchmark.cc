// Decode steps and prefill of a Llama-3-8B-shaped model (benchmarks/llama3_8b_config.h) with
// dummy bf16 weights (`--load-format dummy --dtype bfloat16`: DummyModelWeights) on the CUDA
// device, beside the device's copy bandwidth measured in the same process (issue 16's benchmark;
// run by scripts/gpu-check.sh --run; prints a line and exits 0 without a device):
// - BM_DeviceCopy: a 1 GiB device-to-device copy, best of 10; GB_per_s counts the bytes read and
//   the bytes written (2 GiB per copy), the standard way.
// - BM_DecodeStep/batch:1/context:1024: one decode step of one sequence at position 1024; its
//   floor is the weight bytes over that bandwidth (every weight read once, nothing else):
//   floor_ms, and step_over_floor = step time / floor (the goal: <= 1.2).
// - BM_DecodeStep/batch:64 and 256: one decode step of 64 or 256 sequences at position 1024 each;
//   tokens_per_s = output tokens per second (one token per sequence per step); floor_with_kv_ms
//   adds the K/V reads.
// - BM_Prefill/tokens:1024: a 1024-token prompt from an empty cache; tokens_per_s.
// - graphs:0 and graphs:1 of each decode step: eager (what --enforce-eager runs) and by
//   replaying the CUDA graph of its batch size (ModelRunner::CaptureCudaGraphs, the sizes a
//   worker captures for max_num_seqs 256, captured on first use), side by side on one runner;
//   graph_replays counts the replays (0 for eager). --tiny_cpu skips graphs:1 (no graphs on the
//   CPU).
// A decode step is what a StepRunner runs: metadata upload, the forward pass, the LM head of the
// sampling rows, and greedy sampling on the device (worker/device_sampler.h: the token ids come
// back, not the logits). A prefill is ModelRunner::Execute (its one row's logits copied back).
//
//   build/benchmarks/cuda_model_benchmark --benchmark_repetitions=3
//   build/benchmarks/cuda_model_benchmark --tiny_cpu   # the benchmark itself checked on the CPU
//
// --tiny_cpu runs the same code on a model of the same family shrunk to 2 layers of hidden 64
// (benchmarks/llama3_8b_config.h), on the CPU, with a host memcpy for the bandwidth: a check of
// the benchmark's own steps (tables, cache fill, batches) where no device is; its figures mean
// nothing.
//
// KV cache: bf16 (the model's dtype, as vLLM keeps it), 16-token blocks; a sequence of 1024
// positions plus the step's token holds 65 blocks of 2 MiB (16 tokens x 32 layers x K and V x 8
// heads x 128 x 2 bytes), so batch 256 needs 32.5 GiB beside the 15 GiB of weights: it fits an
// H200 (139 GiB) and an H100 (79 GiB) alike (fp32 K/V would need 65 GiB: H200 only). The runner
// gets the blocks of as many sequences as fit in 90% of the free memory after the weights and
// 4 GiB of room for activations; a batch beyond them is skipped with a message naming the bytes.
// The cache is filled before the decode steps: the prefill's 1024 positions of sequence 0 are
// copied (KvCache::CopyBlocks) into every other sequence's blocks, so attention reads real keys
// and values, not zeros.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <numeric>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmarks/llama3_8b_config.h"
#include "common/dtype.h"
#include "common/model_config.h"
#include "kernels/cuda/device_memory.h"
#include "worker/cuda_graph_plan.h"
#include "worker/device_sampler.h"
#include "worker/in_process_executor.h"
#include "worker/model_runner.h"
#include "worker/model_weights.h"
#include "worker/sampler.h"

namespace pagoda {
namespace {

constexpr int64_t kContext = 1024;  // positions before the decode step's token
constexpr int64_t kPrefillTokens = 1024;
constexpr int64_t kBlockSize = 16;
constexpr int64_t kMaxBatch = 256;
constexpr int64_t kBlocksPerSeq = (kContext + 1 + kBlockSize - 1) / kBlockSize;  // 65
constexpr int64_t kActivationRoom = int64_t{4} << 30;
constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

// What the benchmarks run on: the Llama-3-8B shape on the device, or --tiny_cpu's check.
struct Setup {
  ModelConfig config;
  Device device = Device::kCuda;
};

[[noreturn]] void Die(const absl::Status& status) {
  std::fprintf(stderr, "cuda_model_benchmark: %s\n", status.ToString().c_str());
  std::exit(1);
}

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Device copy bandwidth (bytes read + bytes written per second): best of 10 copies of 1 GiB
// after one warm-up copy; CopyBytes returns when the copy is done. On the CPU (--tiny_cpu): the
// same with memcpy of 64 MiB.
double CopyBandwidth(Device device) {
  static const double bandwidth = [device] {
    const int64_t bytes = device == Device::kCuda ? int64_t{1} << 30 : int64_t{64} << 20;
    std::shared_ptr<void> from, to;
    if (device == Device::kCuda) {
      absl::StatusOr<std::shared_ptr<void>> a = kernels::cuda::AllocateZeroed(bytes);
      if (!a.ok()) Die(a.status());
      absl::StatusOr<std::shared_ptr<void>> b = kernels::cuda::AllocateZeroed(bytes);
      if (!b.ok()) Die(b.status());
      from = *std::move(a);
      to = *std::move(b);
    } else {
      from = std::shared_ptr<char[]>(new char[bytes]());
      to = std::shared_ptr<char[]>(new char[bytes]());
    }
    double best = 0.0;
    for (int i = 0; i <= 10; ++i) {
      const auto start = std::chrono::steady_clock::now();
      if (device == Device::kCuda) {
        if (absl::Status s = kernels::cuda::CopyBytes(to.get(), from.get(), bytes); !s.ok()) {
          Die(s);
        }
      } else {
        std::memcpy(to.get(), from.get(), static_cast<size_t>(bytes));
        benchmark::DoNotOptimize(to.get());
      }
      const double seconds = Seconds(start);
      if (i > 0) best = std::max(best, 2.0 * static_cast<double>(bytes) / seconds);
    }
    return best;
  }();
  return bandwidth;
}

// The model on the device, loaded once, with the KV blocks of num_seqs() sequences (sequence s
// owns blocks [s * 65, s * 65 + 65)), filled as the header says.
class Model {
 public:
  explicit Model(const Setup& setup) {
    const ModelConfig& config = setup.config;
    ModelWeights weights = DummyModelWeights(config, /*seed=*/0, {}, {.dtype = DType::kBF16});
    weight_bytes_ = weights.num_bytes();
    num_seqs_ = kMaxBatch;  // the CPU check's tiny cache always fits
    if (setup.device == Device::kCuda) {
      absl::StatusOr<kernels::cuda::DeviceMemoryInfo> memory = kernels::cuda::MemoryInfo();
      if (!memory.ok()) Die(memory.status());
      free_before_ = memory->free_bytes;
      const int64_t budget = static_cast<int64_t>(0.9 * static_cast<double>(free_before_)) -
                             weight_bytes_ - kActivationRoom;
      const int64_t fit = budget > 0 ? InProcessExecutor::NumBlocksForBudget(
                                           config, kBlockSize, budget, {}, DType::kBF16)
                                     : 0;
      num_seqs_ = std::min(kMaxBatch, fit / kBlocksPerSeq);
    }
    if (num_seqs_ < 1) {
      Die(absl::ResourceExhaustedError(absl::StrCat(
          "the device has ", static_cast<double>(free_before_) / kGiB, " GiB free: not enough for ",
          static_cast<double>(weight_bytes_) / kGiB, " GiB of weights and one sequence's KV")));
    }
    auto runner = ModelRunner::Create(config, std::move(weights),
                                      {.num_blocks = num_seqs_ * kBlocksPerSeq,
                                       .block_size = kBlockSize,
                                       .kv_cache_dtype = DType::kBF16,
                                       .device = setup.device});
    if (!runner.ok()) Die(runner.status());
    runner_ = std::move(*runner);
    tables_.resize(num_seqs_);
    for (int64_t s = 0; s < num_seqs_; ++s) {
      tables_[s].resize(kBlocksPerSeq);
      std::iota(tables_[s].begin(), tables_[s].end(), static_cast<int32_t>(s * kBlocksPerSeq));
    }
    // Sequence 0's first kContext positions by a prefill, then copied to every other sequence.
    const std::vector<int32_t> prompt = PrefillTokens();
    const SequenceInput input{.token_ids = prompt, .block_table = tables_[0]};
    if (absl::StatusOr<StepLogits*> out = runner_->Execute({&input, 1}); !out.ok()) {
      Die(out.status());
    }
    std::vector<std::pair<int32_t, int32_t>> copies;
    for (int64_t s = 1; s < num_seqs_; ++s) {
      for (int64_t b = 0; b < kContext / kBlockSize; ++b)
        copies.emplace_back(tables_[0][b], tables_[s][b]);
    }
    if (absl::Status s = runner_->kv_cache().CopyBlocks(copies); !s.ok()) Die(s);
    std::printf(
        "cuda_model_benchmark: %s, %.1f GiB free before loading, %.1f GiB of bf16 "
        "weights, KV cache for %lld sequences of %lld positions\n",
        setup.device == Device::kCuda ? "device" : "CPU check (--tiny_cpu)",
        static_cast<double>(free_before_) / kGiB, static_cast<double>(weight_bytes_) / kGiB,
        static_cast<long long>(num_seqs_), static_cast<long long>(kBlocksPerSeq * kBlockSize));
    std::fflush(stdout);
  }

  ModelRunner& runner() { return *runner_; }
  // The graphs, captured the first time they are asked for (after the eager steps have grown
  // every buffer); the capture's log line has its time and memory.
  absl::Status CaptureGraphsOnce() {
    if (!runner_->cuda_graph_sizes().empty()) return absl::OkStatus();
    return runner_->CaptureCudaGraphs(DefaultCudaGraphSizes(kMaxBatch));
  }
  int64_t weight_bytes() const { return weight_bytes_; }
  int64_t num_seqs() const { return num_seqs_; }
  int64_t free_before() const { return free_before_; }
  const std::vector<int32_t>& table(int64_t s) const { return tables_[s]; }

  // The prompt of the prefill benchmark (and of the fill): pseudo-random ids of the vocabulary.
  static std::vector<int32_t> PrefillTokens() {
    std::vector<int32_t> tokens(kPrefillTokens);
    for (int64_t i = 0; i < kPrefillTokens; ++i) {
      tokens[i] = static_cast<int32_t>((i * 7919 + 13) % 128000);
    }
    return tokens;
  }

 private:
  std::unique_ptr<ModelRunner> runner_;
  std::vector<std::vector<int32_t>> tables_;
  int64_t weight_bytes_ = 0;
  int64_t num_seqs_ = 0;
  int64_t free_before_ = 0;
};

// The model of the process's one Setup, loaded by the first benchmark that needs it.
Model& GetModel(const Setup& setup) {
  static Model* model = new Model(setup);
  return *model;
}

void BM_DeviceCopy(benchmark::State& state, const Setup& setup) {
  for (auto _ : state) benchmark::DoNotOptimize(CopyBandwidth(setup.device));
  state.counters["GB_per_s"] = CopyBandwidth(setup.device) / 1e9;
}

// One decode step of state.range(0) sequences, each with kContext positions in the cache.
void BM_DecodeStep(benchmark::State& state, const Setup& setup) {
  Model& model = GetModel(setup);
  const int64_t batch = state.range(0);
  const bool graphs = state.range(1) != 0;
  if (graphs && setup.device != Device::kCuda) {
    state.SkipWithError("CUDA graphs are the device's");
    return;
  }
  if (graphs) {
    if (const absl::Status captured = model.CaptureGraphsOnce(); !captured.ok()) {
      state.SkipWithError(captured.ToString().c_str());
      return;
    }
  }
  model.runner().set_replay_cuda_graphs(graphs);
  const int64_t replays_before = model.runner().cuda_graph_replays();
  if (batch > model.num_seqs()) {
    const std::string message = absl::StrCat(
        "batch ", batch, " needs ", static_cast<double>(batch * kBlocksPerSeq) * 2.0 / 1024.0,
        " GiB of bf16 KV cache; only ", model.num_seqs(), " sequences fit beside the ",
        static_cast<double>(model.weight_bytes()) / kGiB, " GiB of weights in this device's ",
        static_cast<double>(model.free_before()) / kGiB, " GiB free");
    state.SkipWithError(message.c_str());
    return;
  }
  std::vector<int32_t> tokens(batch);
  std::vector<SequenceInput> inputs(batch);
  for (int64_t s = 0; s < batch; ++s) {
    tokens[s] = static_cast<int32_t>(1000 + s);
    inputs[s] = {.token_ids = absl::MakeConstSpan(&tokens[s], 1),
                 .num_computed_tokens = kContext,
                 .block_table = model.table(s)};
  }
  if (const absl::Status valid = model.runner().ValidateBatch(inputs); !valid.ok()) {
    state.SkipWithError(valid.ToString().c_str());
    return;
  }
  const SamplingParams greedy{.temperature = 0.0f};
  const std::vector<SamplingInput> sampling(static_cast<size_t>(batch), {.params = &greedy});
  DeviceSampler device_sampler;
  const Sampler host_sampler;
  for (auto _ : state) {
    absl::StatusOr<StepLogits*> logits =
        model.runner().ExecuteValidated(inputs, /*keep_logits_on_device=*/true);
    absl::StatusOr<std::vector<SampleOutput>> samples =
        !logits.ok() ? absl::StatusOr<std::vector<SampleOutput>>(logits.status())
        : (*logits)->device_values != nullptr
            ? device_sampler.Sample((*logits)->device_values, batch, (*logits)->vocab_size,
                                    sampling)
            : host_sampler.Sample(absl::MakeSpan((*logits)->values), batch, (*logits)->vocab_size,
                                  sampling);
    if (!samples.ok()) {
      state.SkipWithError(samples.status().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(samples);
  }
  const double floor_s = static_cast<double>(model.weight_bytes()) / CopyBandwidth(setup.device);
  const ModelConfig& c = model.runner().config();
  const double kv_bytes = static_cast<double>(batch) * c.num_hidden_layers * 2.0 * (kContext + 1) *
                          static_cast<double>(c.kv_size()) * 2.0;
  state.counters["floor_ms"] = floor_s * 1e3;
  state.counters["floor_with_kv_ms"] =
      (static_cast<double>(model.weight_bytes()) + kv_bytes) / CopyBandwidth(setup.device) * 1e3;
  state.counters["step_over_floor"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * floor_s,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["tokens_per_s"] = benchmark::Counter(
      static_cast<double>(batch * state.iterations()), benchmark::Counter::kIsRate);
  state.counters["copy_GB_per_s"] = CopyBandwidth(setup.device) / 1e9;
  state.counters["graph_replays"] =
      static_cast<double>(model.runner().cuda_graph_replays() - replays_before);
  state.counters["weight_GB"] = static_cast<double>(model.weight_bytes()) / 1e9;
}

// A kPrefillTokens-token prompt from an empty cache (sequence 0's blocks, rewritten with the
// same values each time).
void BM_Prefill(benchmark::State& state, const Setup& setup) {
  Model& model = GetModel(setup);
  const std::vector<int32_t> tokens = Model::PrefillTokens();
  const SequenceInput input{.token_ids = tokens, .block_table = model.table(0)};
  for (auto _ : state) {
    absl::StatusOr<StepLogits*> logits = model.runner().Execute({&input, 1});
    if (!logits.ok()) {
      state.SkipWithError(logits.status().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(logits);
  }
  // Matmul FLOPs of the layers (attention scores excluded).
  const ModelConfig& c = model.runner().config();
  const double per_token = 2.0 * c.num_hidden_layers *
                           (c.hidden_size * (c.q_size() + 2 * c.kv_size()) +
                            c.q_size() * c.hidden_size + 3.0 * c.hidden_size * c.intermediate_size);
  const double tokens_done = static_cast<double>(kPrefillTokens * state.iterations());
  state.counters["tokens_per_s"] = benchmark::Counter(tokens_done, benchmark::Counter::kIsRate);
  state.counters["TFLOP_per_s"] =
      benchmark::Counter(tokens_done * per_token / 1e12, benchmark::Counter::kIsRate);
}

void Register(const Setup& setup) {
  benchmark::RegisterBenchmark("BM_DeviceCopy", BM_DeviceCopy, setup)
      ->Iterations(1)
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("BM_DecodeStep", BM_DecodeStep, setup)
      ->ArgNames({"batch", "graphs"})
      ->ArgsProduct({{1, 64, 256}, {0, 1}})
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("BM_Prefill", BM_Prefill, setup)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
}

}  // namespace
}  // namespace pagoda

int main(int argc, char** argv) {
  // --tiny_cpu (ours) is taken out before Google Benchmark sees the flags.
  bool tiny_cpu = false;
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--tiny_cpu") {
      tiny_cpu = true;
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  if (tiny_cpu) {
    pagoda::Register({.config = pagoda::TinyLlama3Config(), .device = pagoda::Device::kCpu});
  } else if (pagoda::kernels::cuda::DeviceCount() == 0) {
    std::printf("cuda_model_benchmark: no CUDA device; nothing to measure\n");
    return 0;
  } else {
    pagoda::Register({.config = pagoda::Llama3_8BConfig(), .device = pagoda::Device::kCuda});
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
