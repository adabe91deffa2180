// Time of one Sampler::Sample call over a [batch, 49152] logits batch (SmolLM2's vocabulary),
// for the sampling setups a server sees: greedy, plain random, top-k + top-p with penalties, and
// random with logprobs, each unconstrained and with a grammar's token bitmask on every row
// (kernels::ApplyTokenBitmask; the mask itself is computed by the worker). The logits are
// refilled from a saved copy outside the timed region.
//
//   build/benchmarks/sampler_benchmark --benchmark_filter=Sample/.*/32
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <vector>

#include "common/sampling_params.h"
#include "worker/sampler.h"

namespace pagoda {
namespace {

constexpr int64_t kVocabSize = 49152;

SamplingParams Setup(int64_t which) {
  SamplingParams p;
  switch (which) {
    case 0:  // greedy
      p.temperature = 0.0f;
      break;
    case 1:  // plain random
      p.temperature = 0.8f;
      break;
    case 2:  // top-k + top-p + min_p with penalties
      p.temperature = 0.7f;
      p.top_k = 50;
      p.top_p = 0.9f;
      p.min_p = 0.01f;
      p.repetition_penalty = 1.1f;
      p.frequency_penalty = 0.2f;
      p.presence_penalty = 0.1f;
      break;
    default:  // random, top-p, with 5 logprobs
      p.temperature = 1.0f;
      p.top_p = 0.95f;
      p.logprobs = 5;
      break;
  }
  return p;
}

void BM_Sample(benchmark::State& state) {
  const SamplingParams params = Setup(state.range(0));
  const int64_t batch = state.range(1);
  // Structured output: every row masked by a grammar bitmask allowing about 1 token in 4.
  const bool constrained = state.range(2) != 0;
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> saved(batch * kVocabSize);
  for (float& x : saved) x = normal(rng);
  std::vector<int32_t> prompt(200), output(100);
  for (int32_t& id : prompt) id = static_cast<int32_t>(rng() % kVocabSize);
  for (int32_t& id : output) id = static_cast<int32_t>(rng() % kVocabSize);
  std::vector<uint32_t> bitmask((kVocabSize + 31) / 32);
  for (uint32_t& word : bitmask) word = static_cast<uint32_t>(rng() & rng());
  std::vector<SamplingInput> inputs(batch);
  for (int64_t s = 0; s < batch; ++s) {
    inputs[s] = {.params = &params,
                 .seed = static_cast<uint64_t>(s),
                 .step = 100,
                 .prompt_token_ids = prompt,
                 .output_token_ids = output};
    if (constrained) inputs[s].token_bitmask = bitmask;
  }
  const Sampler sampler;
  std::vector<float> logits(saved.size());
  for (auto _ : state) {
    state.PauseTiming();
    logits = saved;
    state.ResumeTiming();
    auto out = sampler.Sample(absl::MakeSpan(logits), batch, kVocabSize, inputs);
    if (!out.ok()) state.SkipWithError("sample failed");
    benchmark::DoNotOptimize(out);
  }
  state.counters["rows_per_s"] = benchmark::Counter(static_cast<double>(batch * state.iterations()),
                                                    benchmark::Counter::kIsRate);
}

// Args: (setup: 0 greedy, 1 random, 2 top-k/top-p/penalties, 3 logprobs; batch; constrained).
BENCHMARK(BM_Sample)
    ->ArgsProduct({{0, 1, 2, 3}, {1, 32}, {0, 1}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

}  // namespace
}  // namespace pagoda

BENCHMARK_MAIN();
