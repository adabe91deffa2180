// Decode-step and prefill time of SmolLM2-135M on the CPU — a dummy model of its shape (fp32), or
// real checkpoints given with --models (GGUF files of any weight type, or model directories) —
// printed beside floors measured in the same process:
// - decode: weight bytes / memory bandwidth, the bandwidth taken from the best of several 1 GiB
//   memcpy runs (bytes read + bytes written per second);
// - prefill: the sgemm FLOP rate at the model's own MLP shape.
//
//   build/benchmarks/model_benchmark --benchmark_repetitions=3
//   build/benchmarks/model_benchmark --models=models/SmolLM2-135M-Instruct.Q4_1.gguf,...
//   build/benchmarks/model_benchmark --models=... --kv_cache_dtype=bf16   # serve's KV dtype
//
// Each model's benchmarks are named after its file (BM_DecodeStep/<name>/<batch>/<position>,
// BM_Prefill/...).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <numeric>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_split.h"
#include "benchmarks/smollm2_config.h"
#include "common/dtype.h"
#include "common/model_config.h"
#include "common/model_source.h"
#include "kernels/gemm.h"
#include "worker/model_runner.h"
#include "worker/model_weights.h"

namespace pagoda {
namespace {

constexpr int64_t kContext = 512;
constexpr int64_t kBlockSize = 16;
constexpr int64_t kMaxSeqs = 32;
constexpr int64_t kPrefillTokens = 512;
// A benchmarked model: its file (empty: the dummy fp32 model) and its KV cache's dtype
// (--kv_cache_dtype=bf16: what `pagoda serve --kv-cache-dtype bfloat16` keeps).
struct ModelSpec {
  std::string path;
  DType kv_cache_dtype = DType::kF32;

  bool operator==(const ModelSpec&) const = default;
};

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Copy bandwidth (read + write bytes per second), best of 5 copies of 1 GiB.
double CopyBandwidth() {
  static const double bandwidth = [] {
    const size_t bytes = size_t{1} << 30;
    std::vector<char> src(bytes, 1), dst(bytes, 0);
    double best = 0.0;
    for (int i = 0; i < 5; ++i) {
      const auto start = std::chrono::steady_clock::now();
      std::memcpy(dst.data(), src.data(), bytes);
      benchmark::DoNotOptimize(dst.data());
      best = std::max(best, 2.0 * static_cast<double>(bytes) / Seconds(start));
    }
    return best;
  }();
  return bandwidth;
}

// sgemm FLOP rate at the MLP up-projection shape of a 512-token prefill, best of 5.
double SgemmRate() {
  static const double rate = [] {
    const int64_t m = kPrefillTokens, n = 2 * 1536, k = 576;
    std::vector<float> a(m * k, 0.5f), b(n * k, 0.25f), c(m * n);
    double best = 0.0;
    for (int i = 0; i < 5; ++i) {
      const auto start = std::chrono::steady_clock::now();
      if (!kernels::Gemm({.a = a.data(), .b = b.data(), .c = c.data(), .m = m, .n = n, .k = k})
               .ok()) {
        std::abort();
      }
      best = std::max(best, 2.0 * m * n * k / Seconds(start));
    }
    return best;
  }();
  return rate;
}

// A model loaded once, with a block table per benchmark sequence.
class Model {
 public:
  // path empty: the dummy fp32 model of SmolLM2's shape.
  explicit Model(const ModelSpec& spec) {
    const std::string& path = spec.path;
    ModelConfig config = SmolLm2Config();
    ModelWeights weights;
    if (path.empty()) {
      weights = DummyModelWeights(config, /*seed=*/0);
    } else {
      absl::StatusOr<ModelSource> source = ModelSource::Open(path);
      absl::StatusOr<ModelWeights> loaded =
          source.ok() ? LoadModelWeights(*source) : absl::StatusOr<ModelWeights>(source.status());
      if (!loaded.ok()) {
        std::fprintf(stderr, "model_benchmark: %s\n", loaded.status().ToString().c_str());
        std::exit(1);
      }
      config = source->config();
      weights = std::move(*loaded);
    }
    weight_bytes_ = weights.num_bytes();
    const int64_t blocks_per_seq =
        (std::max(kContext + 1, kPrefillTokens) + kBlockSize - 1) / kBlockSize;
    tables_.resize(kMaxSeqs + 1);  // the last table serves the prefill benchmark
    for (int64_t s = 0; s <= kMaxSeqs; ++s) {
      tables_[s].resize(blocks_per_seq);
      std::iota(tables_[s].begin(), tables_[s].end(), static_cast<int32_t>(s * blocks_per_seq));
    }
    auto runner = ModelRunner::Create(config, std::move(weights),
                                      {.num_blocks = (kMaxSeqs + 1) * blocks_per_seq,
                                       .block_size = kBlockSize,
                                       .kv_cache_dtype = spec.kv_cache_dtype});
    if (!runner.ok()) {
      std::fprintf(stderr, "model_benchmark: %s\n", runner.status().ToString().c_str());
      std::exit(1);
    }
    runner_ = std::move(*runner);
  }
  ModelRunner& runner() { return *runner_; }
  int64_t weight_bytes() const { return weight_bytes_; }
  const std::vector<int32_t>& table(int64_t s) const { return tables_[s]; }

 private:
  std::unique_ptr<ModelRunner> runner_;
  std::vector<std::vector<int32_t>> tables_;
  int64_t weight_bytes_ = 0;
};

// The model of the running benchmark. Benchmarks run in registration order, grouped by model, so
// each model loads once and is dropped when the next one loads: one model in memory at a time.
Model& GetModel(const ModelSpec& spec) {
  static auto* current = new std::pair<ModelSpec, std::unique_ptr<Model>>();
  if (current->second == nullptr || !(current->first == spec)) {
    current->second.reset();
    current->second = std::make_unique<Model>(spec);
    current->first = spec;
  }
  return *current->second;
}

void BM_CopyBandwidth(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(CopyBandwidth());
  state.counters["GB_per_s"] = CopyBandwidth() / 1e9;
  state.counters["sgemm_GFLOP_per_s"] = SgemmRate() / 1e9;
}

// One decode step (one new token per sequence at position state.range(1), at most kContext) at
// batch state.range(0). The cache's first positions are not filled by a prefill: attention reads
// them all the same (the zeroed cache gives a uniform softmax), so the step does exactly the work
// of a real one and the benchmark skips minutes of prefill. Position 512 is the long-context step;
// 64 is the mean position of llama-bench's tg128 (128 tokens decoded from an empty context), the
// like-for-like figure beside it (benchmarks/vs_llamacpp.sh).
void BM_DecodeStep(benchmark::State& state, const ModelSpec& spec) {
  Model& model = GetModel(spec);
  const int64_t batch = state.range(0);
  const int64_t position = std::min(state.range(1), kContext);
  std::vector<int32_t> tokens(batch);
  std::vector<SequenceInput> inputs(batch);
  for (int64_t s = 0; s < batch; ++s) {
    tokens[s] = static_cast<int32_t>(100 + s);
    inputs[s] = {.token_ids = absl::MakeConstSpan(&tokens[s], 1),
                 .num_computed_tokens = position,
                 .block_table = model.table(s)};
  }
  for (auto _ : state) {
    auto logits = model.runner().Execute(inputs);
    if (!logits.ok()) state.SkipWithError("execute failed");
    benchmark::DoNotOptimize(logits);
  }
  const double floor_s = static_cast<double>(model.weight_bytes()) / CopyBandwidth();
  state.counters["floor_ms"] = floor_s * 1e3;
  // With many sequences the K/V reads outgrow the weights: the floor with them counted too.
  const ModelConfig& c = model.runner().config();
  const double kv_bytes =
      static_cast<double>(batch) * c.num_hidden_layers * 2.0 * (position + 1) *
      static_cast<double>(c.kv_size() * Traits(spec.kv_cache_dtype).block_bytes);
  state.counters["floor_with_kv_ms"] =
      (static_cast<double>(model.weight_bytes()) + kv_bytes) / CopyBandwidth() * 1e3;
  state.counters["step_over_floor"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * floor_s,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["tokens_per_s"] = benchmark::Counter(
      static_cast<double>(batch * state.iterations()), benchmark::Counter::kIsRate);
}

// Speculative decoding's verification at batch 1: the pending token and k = state.range(0) drafts
// in one chunk at position state.range(1) (at most kContext), logits for all k + 1 positions. Its
// time over k = 0's is what a proposal costs. Position 512 is the long-context step; 256 is about
// where benchmarks/speculative.sh's requests decode (prompts of about 140 tokens, 150 out).
void BM_VerifyStep(benchmark::State& state, const ModelSpec& spec) {
  Model& model = GetModel(spec);
  const int64_t k = state.range(0);
  const int64_t position = std::min(state.range(1), kContext);
  std::vector<int32_t> tokens(k + 1);
  for (int64_t i = 0; i <= k; ++i) tokens[i] = static_cast<int32_t>(100 + i);
  const SequenceInput input{.token_ids = tokens,
                            .num_computed_tokens = position,
                            .block_table = model.table(0),
                            .num_sampled_tokens = k + 1};
  for (auto _ : state) {
    auto logits = model.runner().Execute({&input, 1});
    if (!logits.ok()) state.SkipWithError("execute failed");
    benchmark::DoNotOptimize(logits);
  }
}

// A kPrefillTokens-token prompt from an empty cache.
void BM_Prefill(benchmark::State& state, const ModelSpec& spec) {
  Model& model = GetModel(spec);
  const ModelConfig& c = model.runner().config();
  std::vector<int32_t> tokens(kPrefillTokens);
  for (int64_t i = 0; i < kPrefillTokens; ++i) {
    tokens[i] = static_cast<int32_t>((i * 131) % c.vocab_size);
  }
  const SequenceInput input{.token_ids = tokens, .block_table = model.table(kMaxSeqs)};
  for (auto _ : state) {
    auto logits = model.runner().Execute({&input, 1});
    if (!logits.ok()) state.SkipWithError("execute failed");
    benchmark::DoNotOptimize(logits);
  }
  // Matmul FLOPs of the layers (attention scores excluded) for the achieved-rate counter.
  const double per_token = 2.0 * c.num_hidden_layers *
                           (c.hidden_size * (c.q_size() + 2 * c.kv_size()) +
                            c.q_size() * c.hidden_size + 3.0 * c.hidden_size * c.intermediate_size);
  const double tokens_done = static_cast<double>(kPrefillTokens * state.iterations());
  state.counters["tokens_per_s"] = benchmark::Counter(tokens_done, benchmark::Counter::kIsRate);
  state.counters["GFLOP_per_s"] =
      benchmark::Counter(tokens_done * per_token / 1e9, benchmark::Counter::kIsRate);
  state.counters["sgemm_GFLOP_per_s"] = SgemmRate() / 1e9;
  state.counters["weight_MB"] = static_cast<double>(model.weight_bytes()) / 1e6;
}

// "models/SmolLM2-135M-Instruct.Q4_1.gguf" -> "SmolLM2-135M-Instruct.Q4_1".
std::string Label(std::string_view path) {
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  if (const size_t slash = path.rfind('/'); slash != std::string_view::npos) {
    path.remove_prefix(slash + 1);
  }
  if (path.size() > 5 && path.substr(path.size() - 5) == ".gguf") path.remove_suffix(5);
  return std::string(path);
}

void RegisterModel(const ModelSpec& spec) {
  const std::string& path = spec.path;
  const std::string label = path.empty() ? "dummy_f32" : Label(path);
  benchmark::RegisterBenchmark(("BM_DecodeStep/" + label).c_str(), BM_DecodeStep, spec)
      ->Args({1, 512})
      ->Args({16, 512})
      ->Args({32, 512})
      ->Args({1, 64})
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  benchmark::RegisterBenchmark(("BM_VerifyStep/" + label).c_str(), BM_VerifyStep, spec)
      ->ArgsProduct({benchmark::CreateDenseRange(0, 7, 1), {512}})
      ->Args({12, 512})  // speculative.sh's default k
      ->ArgsProduct({benchmark::CreateDenseRange(0, 12, 1), {256}})
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  benchmark::RegisterBenchmark(("BM_Prefill/" + label).c_str(), BM_Prefill, spec)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
}

}  // namespace
}  // namespace pagoda

int main(int argc, char** argv) {
  // --models=a,b and --kv_cache_dtype=f32|bf16 (ours) are taken out before Google Benchmark sees
  // the flags.
  std::vector<std::string> models;
  pagoda::DType kv_cache_dtype = pagoda::DType::kF32;
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg.substr(0, 9) == "--models=") {
      std::vector<std::string> paths =
          absl::StrSplit(std::string(arg.substr(9)), ',', absl::SkipEmpty());
      models.insert(models.end(), paths.begin(), paths.end());
    } else if (arg.substr(0, 17) == "--kv_cache_dtype=") {
      const std::string_view dtype = arg.substr(17);
      if (dtype != "f32" && dtype != "bf16") {
        std::fprintf(stderr, "model_benchmark: --kv_cache_dtype takes f32 or bf16, not %s\n",
                     std::string(dtype).c_str());
        return 1;
      }
      kv_cache_dtype = dtype == "bf16" ? pagoda::DType::kBF16 : pagoda::DType::kF32;
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  if (models.empty()) models.emplace_back();  // the dummy model
  benchmark::RegisterBenchmark("BM_CopyBandwidth", pagoda::BM_CopyBandwidth)
      ->Iterations(1)
      ->Unit(benchmark::kMillisecond);
  for (const std::string& path : models) pagoda::RegisterModel({path, kv_cache_dtype});
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
