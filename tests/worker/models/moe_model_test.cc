// Mixture-of-experts models end to end: tiny random Qwen3-MoE and Mixtral checkpoints of odd sizes
// (tests/data/make_moe_model_fixtures.py: GQA 3 and 4, head_dim != hidden / heads, 6 experts top
// 2 with uneven routes, a dense layer between sparse ones, renormalised top k or not), as Hugging
// Face directories and as the GGUF files llama.cpp's converter writes (stacked 3-D experts, F16
// and Q8_0), must give the greedy tokens and logits of a float64 NumPy forward of transformers'
// models, two prompts batched, at tensor parallel sizes 1 and 2. Then the configs (from config.json
// and from GGUF metadata) and their malformed variants, and a checkpoint without a router. With
// expert parallelism (whole experts per rank, --enable-expert-parallel) the same checkpoints at
// tensor parallel size 2 must give the same reference tokens and logits.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/model_config.h"
#include "common/model_source.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/model_harness.h"
#include "tests/testing/smollm2_near_tie.h"
#include "worker/model_weights.h"
#include "worker/tensor_parallel.h"

namespace pagoda {
namespace {

using testing::Generation;
using ::testing::HasSubstr;

std::string FixtureDir() { return PAGODA_MOE_MODEL_FIXTURE_DIR; }

struct Expected {
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::vector<int32_t>> greedy;             // [prompt][step]
  std::vector<std::vector<std::vector<float>>> logits;  // [prompt][step][vocab]
};

Expected LoadExpected(const std::string& name) {
  absl::StatusOr<std::string> text = ReadFileToString(FixtureDir() + "/" + name + ".json");
  EXPECT_TRUE(text.ok()) << text.status() << " (run through ctest: moe_model_fixtures writes it)";
  if (!text.ok()) return {};
  const nlohmann::json j = nlohmann::json::parse(*text);
  return {j["prompts"], j["greedy"], j["logits"]};
}

// The fp32 forward over weights equal to the reference's is within 1e-4 + 1e-4 |logit| of it
// (seen: at most 1e-5). The 8-bit activations of the integer path (Q8_0 weights, the default run)
// move mixtral_q8_0's logits (O(10) here) by up to 0.59 (measured); the bound is 1.0, and the
// fixture's greedy margins (>= 0.3) and router gaps (>= 0.3) were drawn wide for that path, which
// gives the reference's tokens too. moe_model_test_exact_path keeps the tight bound for it.
float LogitTolerance(const std::string& name, float want) {
  if (absl::StrContains(name, "q8_0") && testing::CpuKernelsQuantizeActivations()) return 1.0f;
  return 1e-4f + 1e-4f * std::abs(want);
}

// (model, ".gguf" or "_hf", tensor parallel size)
using Case = std::tuple<std::string, std::string, int32_t>;

// Decodes the case's checkpoint (whole experts per rank when `expert_parallel`) and compares
// with its reference.
void ExpectTheReference(const Case& c, bool expert_parallel) {
  const auto& [name, suffix, tp] = c;
  const Expected expected = LoadExpected(name);
  ASSERT_EQ(expected.greedy.size(), 2u);
  const int64_t steps = static_cast<int64_t>(expected.greedy[0].size());
  const std::string path = FixtureDir() + "/" + name + suffix;
  const Generation gen =
      tp == 1 ? testing::RunModel(path, expected.prompts, steps)
              : testing::RunModelSharded(path, expected.prompts, steps, tp, 0, expert_parallel);
  ASSERT_EQ(gen.tokens.size(), expected.prompts.size());
  float max_diff = 0;
  for (size_t s = 0; s < expected.prompts.size(); ++s) {
    EXPECT_EQ(gen.tokens[s], expected.greedy[s]) << "prompt " << s;
    ASSERT_EQ(gen.logits[s].size(), expected.logits[s].size());
    for (size_t step = 0; step < expected.logits[s].size(); ++step) {
      ASSERT_EQ(gen.logits[s][step].size(), expected.logits[s][step].size());
      for (size_t i = 0; i < expected.logits[s][step].size(); ++i) {
        const float want = expected.logits[s][step][i];
        const float got = gen.logits[s][step][i];
        max_diff = std::max(max_diff, std::abs(got - want));
        ASSERT_NEAR(got, want, LogitTolerance(name, want))
            << "prompt " << s << " step " << step << " token " << i;
      }
    }
  }
  ::testing::Test::RecordProperty("max_abs_logit_diff", absl::StrCat(max_diff));
}

std::string CaseName(const ::testing::TestParamInfo<Case>& info) {
  return absl::StrCat(std::get<0>(info.param), std::get<1>(info.param) == ".gguf" ? "_gguf" : "_hf",
                      "_tp", std::get<2>(info.param));
}

class MoeModel : public ::testing::TestWithParam<Case> {};

TEST_P(MoeModel, GreedyTokensAndLogitsEqualTheFloat64Reference) {
  ExpectTheReference(GetParam(), /*expert_parallel=*/false);
}

INSTANTIATE_TEST_SUITE_P(
    Checkpoints, MoeModel,
    ::testing::Values(Case{"qwen3moe_f32", "_hf", 1}, Case{"qwen3moe_f32", "_hf", 2},
                      Case{"qwen3moe_f32", ".gguf", 1}, Case{"qwen3moe_f32", ".gguf", 2},
                      Case{"qwen3moe_mixed", "_hf", 1}, Case{"qwen3moe_mixed", "_hf", 2},
                      Case{"mixtral_f16", "_hf", 1}, Case{"mixtral_f16", "_hf", 2},
                      Case{"mixtral_f16", ".gguf", 1}, Case{"mixtral_f16", ".gguf", 2},
                      Case{"mixtral_q8_0", "_hf", 1}, Case{"mixtral_q8_0", ".gguf", 1},
                      Case{"mixtral_q8_0", ".gguf", 2}),
    CaseName);

// Each rank holds 3 of the 6 experts whole and runs only the rows routed to them; the all-reduce
// after the MLP sums the two halves. (Named Checkpoints/ too: moe_model_test_exact_path runs it.)
class MoeModelExpertParallel : public ::testing::TestWithParam<Case> {};

TEST_P(MoeModelExpertParallel, GreedyTokensAndLogitsEqualTheFloat64Reference) {
  ExpectTheReference(GetParam(), /*expert_parallel=*/true);
}

INSTANTIATE_TEST_SUITE_P(Checkpoints, MoeModelExpertParallel,
                         ::testing::Values(Case{"qwen3moe_f32", "_hf", 2},
                                           Case{"qwen3moe_f32", ".gguf", 2},
                                           Case{"qwen3moe_mixed", "_hf", 2},
                                           Case{"mixtral_q8_0", ".gguf", 2}),
                         CaseName);

// GGUF's experts stay in their stored type (Q8_0 here, F16 in mixtral_f16), sliced per expert out
// of the stacked tensor; the router stays F32 as the converter writes it.
TEST(MoeWeights, GgufExpertsKeepTheirStoredTypes) {
  for (const auto& [name, dtype] : {std::pair<std::string, DType>{"mixtral_q8_0", DType::kQ8_0},
                                    {"mixtral_f16", DType::kF16}}) {
    absl::StatusOr<ModelSource> model = ModelSource::Open(FixtureDir() + "/" + name + ".gguf");
    ASSERT_TRUE(model.ok()) << model.status();
    for (int32_t size : {1, 2}) {
      absl::StatusOr<ModelWeights> weights =
          LoadModelWeights(*model, {.rank = size - 1, .size = size});
      ASSERT_TRUE(weights.ok()) << weights.status();
      const ExpertWeights& experts = weights->layers[1].experts;
      ASSERT_EQ(experts.gate_up_proj.size(), 6u);
      EXPECT_EQ(experts.router.parts[0].dtype(), DType::kF32);
      for (size_t e = 0; e < 6; ++e) {
        ASSERT_EQ(experts.gate_up_proj[e].parts.size(), 1u);
        EXPECT_EQ(experts.gate_up_proj[e].parts[0].dtype(), dtype);
        EXPECT_EQ(experts.gate_up_proj[e].out_features(), 2 * 64 / size);
        EXPECT_EQ(experts.down_proj[e].parts[0].dtype(), dtype);
        EXPECT_EQ(experts.down_proj[e].in_features(), 64 / size);
      }
      EXPECT_TRUE(weights->layers[1].gate_up_proj.empty());
    }
  }
}

// Under expert parallelism a rank holds its 3 experts whole, in their stored type (Q8_0 bytes
// read per expert out of the stacked tensor): the same bytes as a slice of all 6, in fewer,
// larger matrices.
TEST(MoeWeights, ExpertParallelRanksHoldWholeExpertsInTheirStoredTypes) {
  absl::StatusOr<ModelSource> model = ModelSource::Open(FixtureDir() + "/mixtral_q8_0.gguf");
  ASSERT_TRUE(model.ok()) << model.status();
  absl::StatusOr<ModelWeights> sliced = LoadModelWeights(*model, {.rank = 1, .size = 2});
  ASSERT_TRUE(sliced.ok()) << sliced.status();
  absl::StatusOr<ModelWeights> all = LoadModelWeights(*model);
  ASSERT_TRUE(all.ok()) << all.status();
  int64_t whole_bytes = 0;
  for (int32_t rank : {0, 1}) {
    absl::StatusOr<ModelWeights> weights =
        LoadModelWeights(*model, {.rank = rank, .size = 2, .expert_parallel = true});
    ASSERT_TRUE(weights.ok()) << weights.status();
    const ExpertWeights& experts = weights->layers[1].experts;
    const ExpertWeights& every = all->layers[1].experts;
    ASSERT_EQ(experts.gate_up_proj.size(), 3u);
    ASSERT_EQ(experts.down_proj.size(), 3u);
    EXPECT_EQ(experts.router.out_features(), 6);
    for (size_t i = 0; i < 3; ++i) {
      const size_t e = static_cast<size_t>(rank) * 3 + i;  // experts [3 * rank, 3 * rank + 3)
      ASSERT_EQ(experts.gate_up_proj[i].parts.size(), 1u);
      EXPECT_EQ(experts.gate_up_proj[i].parts[0].dtype(), DType::kQ8_0);
      EXPECT_EQ(experts.down_proj[i].parts[0].dtype(), DType::kQ8_0);
      EXPECT_EQ(experts.gate_up_proj[i].out_features(), 2 * 64);
      EXPECT_EQ(experts.down_proj[i].in_features(), 64);
      // Expert e of the unsharded model, byte for byte.
      const Tensor& mine = experts.down_proj[i].parts[0];
      const Tensor& whole = every.down_proj[e].parts[0];
      ASSERT_EQ(mine.num_bytes(), whole.num_bytes());
      EXPECT_EQ(std::memcmp(mine.data(), whole.data(), mine.num_bytes()), 0) << "expert " << e;
      whole_bytes += experts.gate_up_proj[i].num_bytes() + experts.down_proj[i].num_bytes();
    }
  }
  int64_t sliced_bytes = 0;
  const ExpertWeights& slices = sliced->layers[1].experts;
  for (size_t e = 0; e < 6; ++e) {
    sliced_bytes += slices.gate_up_proj[e].num_bytes() + slices.down_proj[e].num_bytes();
  }
  EXPECT_EQ(whole_bytes, 2 * sliced_bytes);  // both ranks' whole experts vs one rank's slices
}

// The GGUF metadata gives the config.json of its safetensors twin.
TEST(MoeConfig, GgufMetadataGivesTheHuggingFaceConfig) {
  for (const std::string name : {"qwen3moe_f32", "mixtral_f16"}) {
    absl::StatusOr<ModelSource> gguf = ModelSource::Open(FixtureDir() + "/" + name + ".gguf");
    ASSERT_TRUE(gguf.ok()) << gguf.status();
    absl::StatusOr<ModelSource> hf = ModelSource::Open(FixtureDir() + "/" + name + "_hf");
    ASSERT_TRUE(hf.ok()) << hf.status();
    const ModelConfig& g = gguf->config();
    const ModelConfig& h = hf->config();
    EXPECT_EQ(g.architecture, h.architecture) << name;
    EXPECT_EQ(g.num_experts, 6) << name;
    EXPECT_EQ(h.num_experts, 6) << name;
    EXPECT_EQ(g.num_experts_per_tok, 2) << name;
    EXPECT_EQ(h.num_experts_per_tok, 2) << name;
    EXPECT_EQ(g.moe_intermediate_size, h.moe_intermediate_size) << name;
    EXPECT_TRUE(g.norm_topk_prob && h.norm_topk_prob) << name;
    EXPECT_EQ(g.qk_norm, h.qk_norm) << name;
    EXPECT_EQ(g.head_dim, 16) << name;
    EXPECT_EQ(g.num_key_value_heads, h.num_key_value_heads) << name;
    for (int64_t layer = 0; layer < g.num_hidden_layers; ++layer) {
      EXPECT_TRUE(g.IsMoeLayer(layer) && h.IsMoeLayer(layer)) << name << " layer " << layer;
    }
  }
  EXPECT_EQ(ModelSource::Open(FixtureDir() + "/qwen3moe_f32.gguf")->config().architecture,
            "Qwen3MoeForCausalLM");
  EXPECT_EQ(ModelSource::Open(FixtureDir() + "/mixtral_f16.gguf")->config().architecture,
            "MixtralForCausalLM");
}

// A sparse layer without its router is refused, naming the tensor in the checkpoint's naming.
TEST(MoeWeights, AMissingRouterIsAClearError) {
  const std::string base = FixtureDir() + "/qwen3moe_no_router";
  for (const auto& [path, tensor] :
       {std::pair<std::string, std::string>{base + ".gguf", "blk.1.ffn_gate_inp.weight"},
        {base + "_hf", "model.layers.1.mlp.gate.weight"}}) {
    absl::StatusOr<ModelSource> model = ModelSource::Open(path);
    ASSERT_TRUE(model.ok()) << model.status();
    const absl::Status status = LoadModelWeights(*model).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr(tensor));
  }
}

// A qwen3moe file must have experts.
TEST(MoeConfig, AQwen3MoeFileWithoutExpertsIsRefused) {
  const absl::Status status =
      ModelSource::Open(FixtureDir() + "/qwen3moe_zero_experts.gguf").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("\"qwen3moe.expert_count\" is 0"));
}

// A Qwen3-MoE config.json with `patch`'s fields set (null: removed).
absl::StatusOr<ModelConfig> Qwen3Moe(const std::string& patch = "{}") {
  nlohmann::json config = nlohmann::json::parse(R"({
      "architectures": ["Qwen3MoeForCausalLM"], "vocab_size": 96, "hidden_size": 64,
      "intermediate_size": 96, "num_hidden_layers": 4, "num_attention_heads": 6,
      "num_key_value_heads": 2, "head_dim": 16, "num_experts": 6, "num_experts_per_tok": 2,
      "moe_intermediate_size": 32, "norm_topk_prob": false, "decoder_sparse_step": 2,
      "mlp_only_layers": [3]})");
  config.merge_patch(nlohmann::json::parse(patch));
  return ModelConfig::FromJson(config.dump(), "config.json");
}

TEST(MoeConfig, ReadsTheExpertFieldsAndWhichLayersAreSparse) {
  absl::StatusOr<ModelConfig> c = Qwen3Moe();
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->num_experts, 6);
  EXPECT_EQ(c->num_experts_per_tok, 2);
  EXPECT_EQ(c->moe_intermediate_size, 32);
  EXPECT_FALSE(c->norm_topk_prob);
  EXPECT_TRUE(c->qk_norm);
  // (layer + 1) % 2 == 0 and not in mlp_only_layers: only layer 1.
  EXPECT_FALSE(c->IsMoeLayer(0));
  EXPECT_TRUE(c->IsMoeLayer(1));
  EXPECT_FALSE(c->IsMoeLayer(2));
  EXPECT_FALSE(c->IsMoeLayer(3));

  absl::StatusOr<ModelConfig> mixtral = ModelConfig::FromJson(
      R"({"architectures": ["MixtralForCausalLM"], "vocab_size": 96, "hidden_size": 64,
          "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 8,
          "num_key_value_heads": 2, "num_local_experts": 8, "num_experts_per_tok": 2})",
      "config.json");
  ASSERT_TRUE(mixtral.ok()) << mixtral.status();
  EXPECT_EQ(mixtral->num_experts, 8);
  EXPECT_EQ(mixtral->moe_intermediate_size, 64);  // its experts are its MLPs
  EXPECT_TRUE(mixtral->norm_topk_prob);           // always renormalised
  EXPECT_TRUE(mixtral->IsMoeLayer(0) && mixtral->IsMoeLayer(1));
  EXPECT_FALSE(mixtral->qk_norm);
}

// `pagoda convert` writes ModelConfig::ToJson: the expert fields survive the round trip.
TEST(MoeConfig, ToJsonRoundTripsTheExpertFields) {
  for (const std::string name : {"qwen3moe_mixed", "mixtral_f16"}) {
    absl::StatusOr<ModelSource> hf = ModelSource::Open(FixtureDir() + "/" + name + "_hf");
    ASSERT_TRUE(hf.ok()) << hf.status();
    const ModelConfig& c = hf->config();
    absl::StatusOr<ModelConfig> again = ModelConfig::FromJson(c.ToJson(), "roundtrip");
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(again->architecture, c.architecture);
    EXPECT_EQ(again->num_experts, c.num_experts);
    EXPECT_EQ(again->num_experts_per_tok, c.num_experts_per_tok);
    EXPECT_EQ(again->moe_intermediate_size, c.moe_intermediate_size);
    EXPECT_EQ(again->intermediate_size, c.intermediate_size);
    EXPECT_EQ(again->norm_topk_prob, c.norm_topk_prob);
    EXPECT_EQ(again->decoder_sparse_step, c.decoder_sparse_step);
    EXPECT_EQ(again->mlp_only_layers, c.mlp_only_layers);
    EXPECT_EQ(again->qk_norm, c.qk_norm);
  }
}

TEST(MoeConfig, MalformedExpertFieldsAreClearErrors) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"num_experts": 0})", "\"num_experts\" must be positive, got 0"},
      {R"({"num_experts_per_tok": 7})", "\"num_experts_per_tok\" (7) exceeds num_experts (6)"},
      {R"({"num_experts_per_tok": 0})", "\"num_experts_per_tok\" must be positive"},
      {R"({"moe_intermediate_size": -4})", "\"moe_intermediate_size\" must be positive"},
      {R"({"decoder_sparse_step": 0})", "\"decoder_sparse_step\" must be positive"},
      {R"({"mlp_only_layers": [4]})", "\"mlp_only_layers\" holds 4, not a layer index in [0, 4)"},
      {R"({"mlp_only_layers": 1})", "\"mlp_only_layers\" must be a list of layer indices"},
      {R"({"shared_expert_intermediate_size": 64})", "shared experts are not supported"},
  };
  for (const auto& [extra, message] : cases) {
    absl::StatusOr<ModelConfig> c = Qwen3Moe(extra);
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << extra;
    EXPECT_THAT(std::string(c.status().message()), HasSubstr(message)) << extra;
  }
}

// Every rank holds a slice of every expert: the experts' width must divide like the MLP's.
TEST(MoeConfig, TensorParallelSizesMustSplitTheExperts) {
  absl::StatusOr<ModelConfig> c = Qwen3Moe(R"({"moe_intermediate_size": 40})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(CheckTensorParallelSize(*c, 2).ok());
  c = Qwen3Moe(R"({"moe_intermediate_size": 33})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(std::string(CheckTensorParallelSize(*c, 2).message()),
              HasSubstr("moe_intermediate_size (33) is not divisible by the tensor parallel "
                        "size 2"));
  absl::StatusOr<ShardLayout> layout = ComputeShardLayout(*Qwen3Moe(), {.rank = 1, .size = 2});
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_EQ(layout->expert_width, 16);
  EXPECT_EQ(layout->expert_begin, 16);
}

// Whole experts need num_experts, not moe_intermediate_size, to divide by the ranks; the error
// names both numbers and the sizes that do work.
TEST(MoeConfig, ExpertParallelNeedsTheExpertsToDivide) {
  absl::StatusOr<ModelConfig> c = Qwen3Moe(R"({"moe_intermediate_size": 33})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(CheckTensorParallelSize(*c, 2, /*expert_parallel=*/true).ok());
  c = Qwen3Moe(R"({"num_experts": 5})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(CheckTensorParallelSize(*c, 2).ok());
  const absl::Status status =
      ComputeShardLayout(*c, {.rank = 0, .size = 2, .expert_parallel = true}).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("num_experts (5) is not divisible by the tensor parallel size 2"));

  // The fixture's 6 experts over 4 ranks (its heads would split): refused when loading.
  absl::StatusOr<ModelSource> model = ModelSource::Open(FixtureDir() + "/mixtral_f16_hf");
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_TRUE(CheckTensorParallelSize(*model, 4).ok());
  const absl::Status load =
      LoadModelWeights(*model, {.rank = 3, .size = 4, .expert_parallel = true}).status();
  EXPECT_EQ(load.code(), absl::StatusCode::kInvalidArgument) << load;
  EXPECT_THAT(std::string(load.message()),
              HasSubstr("num_experts (6) is not divisible by the tensor parallel size 4"));
  EXPECT_THAT(std::string(CheckTensorParallelSize(*model, 4, false, true).message()),
              HasSubstr("tensor parallel sizes that work for this model: 1, 2"));
}

// Expert e lives on rank e * T / E; at one rank, or on a dense model, the flag changes nothing.
TEST(MoeConfig, ExpertParallelLayoutHoldsAContiguousRangeOfWholeExperts) {
  absl::StatusOr<ModelConfig> c = Qwen3Moe();
  ASSERT_TRUE(c.ok()) << c.status();
  for (int32_t rank : {0, 1}) {
    absl::StatusOr<ShardLayout> layout =
        ComputeShardLayout(*c, {.rank = rank, .size = 2, .expert_parallel = true});
    ASSERT_TRUE(layout.ok()) << layout.status();
    EXPECT_EQ(layout->num_local_experts, 3);
    EXPECT_EQ(layout->expert_first, 3 * rank);
    EXPECT_EQ(layout->expert_width, 32);
    EXPECT_EQ(layout->expert_begin, 0);
    EXPECT_EQ(layout->num_heads, 3);  // attention stays tensor-parallel
  }
  absl::StatusOr<ShardLayout> one = ComputeShardLayout(*c, {.expert_parallel = true});
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->num_local_experts, 6);
  EXPECT_EQ(one->expert_first, 0);
  EXPECT_EQ(one->expert_width, 32);
  absl::StatusOr<ShardLayout> sliced = ComputeShardLayout(*c, {.rank = 1, .size = 2});
  ASSERT_TRUE(sliced.ok()) << sliced.status();
  EXPECT_EQ(sliced->num_local_experts, 6);
  EXPECT_EQ(sliced->expert_first, 0);

  absl::StatusOr<ModelConfig> dense = ModelConfig::FromJson(
      R"({"architectures": ["Qwen3ForCausalLM"], "vocab_size": 96, "hidden_size": 64,
          "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 6,
          "num_key_value_heads": 2, "head_dim": 16})",
      "config.json");
  ASSERT_TRUE(dense.ok()) << dense.status();
  EXPECT_TRUE(CheckTensorParallelSize(*dense, 2, /*expert_parallel=*/true).ok());
  absl::StatusOr<ShardLayout> dense_layout =
      ComputeShardLayout(*dense, {.rank = 1, .size = 2, .expert_parallel = true});
  ASSERT_TRUE(dense_layout.ok()) << dense_layout.status();
  EXPECT_EQ(dense_layout->num_local_experts, 0);
  EXPECT_EQ(dense_layout->intermediate_size, 48);
}

// Dummy weights do not depend on the shard mode: a rank's whole experts are the unsharded
// model's, and the tensors planned after the skipped experts are those of a sliced rank.
TEST(MoeWeights, ExpertParallelDummyWeightsAreSlicesOfTheUnshardedOnes) {
  absl::StatusOr<ModelConfig> c = Qwen3Moe();
  ASSERT_TRUE(c.ok()) << c.status();
  const ModelWeights all = DummyModelWeights(*c, /*seed=*/7);
  const auto same = [](const Tensor& a, const Tensor& b) {
    return a.num_bytes() == b.num_bytes() &&
           std::memcmp(a.data(), b.data(), static_cast<size_t>(a.num_bytes())) == 0;
  };
  for (int32_t rank : {0, 1}) {
    const ModelWeights whole =
        DummyModelWeights(*c, 7, {.rank = rank, .size = 2, .expert_parallel = true});
    const ModelWeights sliced = DummyModelWeights(*c, 7, {.rank = rank, .size = 2});
    const ExpertWeights& mine = whole.layers[1].experts;
    ASSERT_EQ(mine.gate_up_proj.size(), 3u);
    for (size_t i = 0; i < 3; ++i) {
      const size_t e = static_cast<size_t>(rank) * 3 + i;
      EXPECT_TRUE(
          same(mine.gate_up_proj[i].parts[0], all.layers[1].experts.gate_up_proj[e].parts[0]))
          << "rank " << rank << " expert " << e;
      EXPECT_TRUE(same(mine.down_proj[i].parts[0], all.layers[1].experts.down_proj[e].parts[0]))
          << "rank " << rank << " expert " << e;
    }
    EXPECT_TRUE(same(whole.layers[2].qkv_proj.parts[0], sliced.layers[2].qkv_proj.parts[0]));
    EXPECT_TRUE(same(whole.layers[3].down_proj.parts[0], sliced.layers[3].down_proj.parts[0]));
  }
}

}  // namespace
}  // namespace pagoda
