// Step time of a Qwen3-MoE-shaped dummy model (fp32, 32 experts, top 4) on the CPU beside the same
// model with a dense MLP of its active width (intermediate_size = top_k * moe_intermediate_size:
// the same active parameters per token), measured side by side in one process. The grouped
// expert path should cost about the active parameters while few experts are touched (decode at
// small batches), and approach all experts' weight reads once every expert gets rows.
//
//   build/benchmarks/moe_benchmark --benchmark_repetitions=3
//
// Benchmarks: BM_DecodeStep/{moe,dense}/<batch> (one new token per sequence at position
// kContext) and BM_Prefill/{moe,dense} (a kPrefillTokens-token prompt); counters give the
// model's weight bytes (all of them, and those one token reads). BM_RankExperts/{sliced,whole}/
// <tokens>: one sparse layer's experts as rank 0 of tensor parallel size 2 computes them (no
// communication), holding a slice of all 32 experts or 16 whole ones (--enable-expert-parallel):
// the same expert bytes, in fewer, larger GEMMs over only the rows routed to the rank.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "common/model_config.h"
#include "worker/model_runner.h"
#include "worker/model_weights.h"
#include "worker/models/moe.h"
#include "worker/tensor_parallel.h"

namespace pagoda {
namespace {

constexpr int64_t kContext = 128;
constexpr int64_t kBlockSize = 16;
constexpr int64_t kMaxSeqs = 32;
constexpr int64_t kPrefillTokens = 256;

// Small Qwen3-MoE dims: hidden 512, 8 query heads of 64 over 2 KV heads, 4 layers, 32 experts of
// width 256 with top 4 (Qwen3-30B-A3B routes 8 of 128 experts of 768 at hidden 2048).
ModelConfig MoeConfig(bool sparse) {
  ModelConfig c;
  c.architecture = "Qwen3MoeForCausalLM";
  c.vocab_size = 4096;
  c.hidden_size = 512;
  c.num_hidden_layers = 4;
  c.num_attention_heads = 8;
  c.num_key_value_heads = 2;
  c.head_dim = 64;
  c.qk_norm = true;
  c.max_position_embeddings = 4096;
  c.tie_word_embeddings = true;
  c.num_experts = 32;
  c.num_experts_per_tok = 4;
  c.moe_intermediate_size = 256;
  c.norm_topk_prob = true;
  c.intermediate_size = c.num_experts_per_tok * c.moe_intermediate_size;  // dense layers
  if (!sparse) c.mlp_only_layers = {0, 1, 2, 3};  // every layer dense: the active-size twin
  return c;
}

// Weight bytes a single token reads: the shared weights and top_k experts of each sparse layer.
int64_t ActiveBytes(const ModelWeights& w, const ModelConfig& c) {
  int64_t bytes = w.num_bytes();
  for (const LayerWeights& layer : w.layers) {
    for (size_t e = static_cast<size_t>(c.num_experts_per_tok);
         e < layer.experts.gate_up_proj.size(); ++e) {
      bytes -= layer.experts.gate_up_proj[e].num_bytes() + layer.experts.down_proj[e].num_bytes();
    }
  }
  return bytes;
}

struct Loaded {
  std::unique_ptr<ModelRunner> runner;
  std::vector<std::vector<int32_t>> tables;  // [kMaxSeqs + 1]: the last serves the prefill
  int64_t weight_bytes = 0;
  int64_t active_bytes = 0;
};

Loaded& GetModel(bool sparse) {
  static auto* models = new std::map<bool, Loaded>();
  Loaded& m = (*models)[sparse];
  if (m.runner != nullptr) return m;
  const ModelConfig config = MoeConfig(sparse);
  ModelWeights weights = DummyModelWeights(config, /*seed=*/0);
  m.weight_bytes = weights.num_bytes();
  m.active_bytes = ActiveBytes(weights, config);
  const int64_t blocks_per_seq = (kPrefillTokens + kContext + kBlockSize) / kBlockSize;
  m.tables.resize(kMaxSeqs + 1);
  for (int64_t s = 0; s <= kMaxSeqs; ++s) {
    m.tables[s].resize(blocks_per_seq);
    std::iota(m.tables[s].begin(), m.tables[s].end(), static_cast<int32_t>(s * blocks_per_seq));
  }
  auto runner = ModelRunner::Create(
      config, std::move(weights),
      {.num_blocks = (kMaxSeqs + 1) * blocks_per_seq, .block_size = kBlockSize});
  if (!runner.ok()) {
    std::fprintf(stderr, "moe_benchmark: %s\n", runner.status().ToString().c_str());
    std::exit(1);
  }
  m.runner = std::move(*runner);
  return m;
}

void Counters(benchmark::State& state, const Loaded& m, int64_t tokens) {
  state.counters["weight_MB"] = static_cast<double>(m.weight_bytes) / 1e6;
  state.counters["active_MB"] = static_cast<double>(m.active_bytes) / 1e6;
  state.counters["tokens_per_s"] = benchmark::Counter(
      static_cast<double>(tokens * state.iterations()), benchmark::Counter::kIsRate);
}

// The cache's first kContext positions are not filled by a prefill (model_benchmark's reasoning:
// a zeroed cache costs attention the same reads).
void BM_DecodeStep(benchmark::State& state, bool sparse) {
  Loaded& m = GetModel(sparse);
  const int64_t batch = state.range(0);
  std::vector<int32_t> tokens(batch);
  std::vector<SequenceInput> inputs(batch);
  for (int64_t s = 0; s < batch; ++s) {
    tokens[s] = static_cast<int32_t>(100 + 37 * s);
    inputs[s] = {.token_ids = absl::MakeConstSpan(&tokens[s], 1),
                 .num_computed_tokens = kContext,
                 .block_table = m.tables[s]};
  }
  for (auto _ : state) {
    auto logits = m.runner->Execute(inputs);
    if (!logits.ok()) state.SkipWithError("execute failed");
    benchmark::DoNotOptimize(logits);
  }
  Counters(state, m, batch);
}

void BM_Prefill(benchmark::State& state, bool sparse) {
  Loaded& m = GetModel(sparse);
  std::vector<int32_t> prompt(kPrefillTokens);
  for (int64_t i = 0; i < kPrefillTokens; ++i) prompt[i] = static_cast<int32_t>((i * 131) % 4000);
  const SequenceInput input{.token_ids = prompt, .block_table = m.tables[kMaxSeqs]};
  for (auto _ : state) {
    auto logits = m.runner->Execute({&input, 1});
    if (!logits.ok()) state.SkipWithError("execute failed");
    benchmark::DoNotOptimize(logits);
  }
  Counters(state, m, kPrefillTokens);
}

struct RankExperts {
  ModelWeights weights;
  std::unique_ptr<MoeFeedForward> moe;
  int64_t expert_bytes = 0;
};

void BM_RankExperts(benchmark::State& state, bool whole) {
  static auto* ranks = new std::map<bool, RankExperts>();
  const ModelConfig config = MoeConfig(/*sparse=*/true);
  RankExperts& r = (*ranks)[whole];
  if (r.moe == nullptr) {
    const TensorParallelShard shard{.rank = 0, .size = 2, .expert_parallel = whole};
    r.weights = DummyModelWeights(config, /*seed=*/0, shard);
    r.moe = std::make_unique<MoeFeedForward>(config, ComputeShardLayout(config, shard).value());
    const ExpertWeights& experts = r.weights.layers[0].experts;
    for (size_t e = 0; e < experts.gate_up_proj.size(); ++e) {
      r.expert_bytes += experts.gate_up_proj[e].num_bytes() + experts.down_proj[e].num_bytes();
    }
  }
  const int64_t tokens = state.range(0);
  std::vector<float> hidden(tokens * config.hidden_size);
  for (size_t i = 0; i < hidden.size(); ++i) {
    hidden[i] = static_cast<float>((i * 2654435761u) % 2001) / 1000.0f - 1.0f;
  }
  std::vector<float> out(hidden.size());
  for (auto _ : state) {
    if (!r.moe->Run(r.weights.layers[0].experts, hidden.data(), tokens, out.data()).ok()) {
      state.SkipWithError("moe failed");
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["expert_MB"] = static_cast<double>(r.expert_bytes) / 1e6;
  state.counters["rank_rows"] = static_cast<double>(r.moe->last_local_rows());
  state.counters["tokens_per_s"] = benchmark::Counter(
      static_cast<double>(tokens * state.iterations()), benchmark::Counter::kIsRate);
}

}  // namespace
}  // namespace pagoda

int main(int argc, char** argv) {
  using pagoda::BM_DecodeStep;
  using pagoda::BM_Prefill;
  // Interleaved, so each pair is measured back to back under the same machine load.
  for (int64_t batch : {1, 4, 32}) {
    for (const auto& [name, sparse] :
         {std::pair<const char*, bool>{"moe", true}, {"dense", false}}) {
      benchmark::RegisterBenchmark((std::string("BM_DecodeStep/") + name).c_str(), BM_DecodeStep,
                                   sparse)
          ->Arg(batch)
          ->Unit(benchmark::kMillisecond);
    }
  }
  for (const auto& [name, sparse] : {std::pair<const char*, bool>{"moe", true}, {"dense", false}}) {
    benchmark::RegisterBenchmark((std::string("BM_Prefill/") + name).c_str(), BM_Prefill, sparse)
        ->Unit(benchmark::kMillisecond);
  }
  for (int64_t tokens : {1, 32, 256}) {
    for (const auto& [name, whole] :
         {std::pair<const char*, bool>{"sliced", false}, {"whole", true}}) {
      benchmark::RegisterBenchmark((std::string("BM_RankExperts/") + name).c_str(),
                                   pagoda::BM_RankExperts, whole)
          ->Arg(tokens)
          ->Unit(benchmark::kMillisecond);
    }
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
