// Mixture-of-experts models end to end: tiny random Qwen3-MoE and Mixtral checkpoints of odd sizes
// (tests/data/make_moe_model_fixtures.py: GQA 3 and 4, head_dim != hidden / heads, 6 experts top
// 2 with uneven routes, a dense layer between sparse ones, renormalised top k or not), as Hugging
// Face directories and as the GGUF files llama.cpp's converter writes (stacked 3-D experts, F16
// and Q8_0), must give the greedy tokens and logits of a float64 NumPy forward of transformers'
// models, two prompts batched, at tensor parallel sizes 1 and 2. Then the configs (from config.json
// and from GGUF metadata) and their malformed variants, and a checkpoint without a router.
#include <algorithm>
#include <cmath>
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

class MoeModel : public ::testing::TestWithParam<Case> {};

TEST_P(MoeModel, GreedyTokensAndLogitsEqualTheFloat64Reference) {
  const auto& [name, suffix, tp] = GetParam();
  const Expected expected = LoadExpected(name);
  ASSERT_EQ(expected.greedy.size(), 2u);
  const int64_t steps = static_cast<int64_t>(expected.greedy[0].size());
  const std::string path = FixtureDir() + "/" + name + suffix;
  const Generation gen = tp == 1 ? testing::RunModel(path, expected.prompts, steps)
                                 : testing::RunModelSharded(path, expected.prompts, steps, tp);
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

INSTANTIATE_TEST_SUITE_P(
    Checkpoints, MoeModel,
    ::testing::Values(Case{"qwen3moe_f32", "_hf", 1}, Case{"qwen3moe_f32", "_hf", 2},
                      Case{"qwen3moe_f32", ".gguf", 1}, Case{"qwen3moe_f32", ".gguf", 2},
                      Case{"qwen3moe_mixed", "_hf", 1}, Case{"qwen3moe_mixed", "_hf", 2},
                      Case{"mixtral_f16", "_hf", 1}, Case{"mixtral_f16", "_hf", 2},
                      Case{"mixtral_f16", ".gguf", 1}, Case{"mixtral_f16", ".gguf", 2},
                      Case{"mixtral_q8_0", "_hf", 1}, Case{"mixtral_q8_0", ".gguf", 1},
                      Case{"mixtral_q8_0", ".gguf", 2}),
    [](const ::testing::TestParamInfo<Case>& info) {
      return absl::StrCat(std::get<0>(info.param),
                          std::get<1>(info.param) == ".gguf" ? "_gguf" : "_hf", "_tp",
                          std::get<2>(info.param));
    });

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

}  // namespace
}  // namespace pagoda
