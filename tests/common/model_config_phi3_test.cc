// ModelConfig for Phi3ForCausalLM (part of model_config_test): fused checkpoints, partial rotary,
// LongRoPE's factors and attention factor, the short/long rule, and the errors for what is not
// implemented or malformed.
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/model_config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/common/model_config_test_util.h"

namespace pagoda {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using json = nlohmann::json;

using testing::ExpectError;
constexpr const char* kSource = testing::kConfigSource;

// Phi-4-mini-instruct's shape: partial rotary 0.75 of head_dim 128, LongRoPE from 4k to 128k.
json Phi4MiniJson() {
  json j = json::parse(R"({
    "architectures": ["Phi3ForCausalLM"], "model_type": "phi3", "vocab_size": 200064,
    "hidden_size": 3072, "intermediate_size": 8192, "num_hidden_layers": 32,
    "num_attention_heads": 24, "num_key_value_heads": 8, "hidden_act": "silu",
    "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "partial_rotary_factor": 0.75,
    "max_position_embeddings": 131072, "original_max_position_embeddings": 4096,
    "sliding_window": 262144, "tie_word_embeddings": true, "bos_token_id": 199999,
    "eos_token_id": 199999, "pad_token_id": 199999, "torch_dtype": "bfloat16"})");
  std::vector<double> short_factor, long_factor;
  for (int i = 0; i < 48; ++i) {
    short_factor.push_back(1.0 + 0.01 * i);
    long_factor.push_back(1.0 + i);
  }
  j["rope_scaling"] = {
      {"type", "longrope"}, {"short_factor", short_factor}, {"long_factor", long_factor}};
  return j;
}

absl::StatusOr<ModelConfig> Parse(const json& config) { return testing::ParseConfig(config); }

TEST(Phi3Config, ParsesPartialRotaryAndLongRope) {
  auto config = Parse(Phi4MiniJson());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->architecture, "Phi3ForCausalLM");
  EXPECT_TRUE(config->fused_projections);
  EXPECT_FALSE(config->attention_bias || config->o_proj_bias || config->qk_norm);
  EXPECT_EQ(config->head_dim, 128);
  EXPECT_EQ(config->rotary_dim, 96);
  EXPECT_EQ(config->rotated_dims(), 96);
  ASSERT_TRUE(config->longrope.enabled());
  EXPECT_EQ(config->longrope.short_factor.size(), 48u);
  EXPECT_DOUBLE_EQ(config->longrope.short_factor[1], 1.01);
  EXPECT_DOUBLE_EQ(config->longrope.long_factor[47], 48.0);
  EXPECT_EQ(config->longrope.original_max_position_embeddings, 4096);
  // transformers: sqrt(1 + ln(131072 / 4096) / ln(4096)).
  EXPECT_DOUBLE_EQ(config->longrope.attention_factor,
                   std::sqrt(1 + std::log(32.0) / std::log(4096.0)));
  EXPECT_EQ(config->rope_scaling.factor, 0.0);
  EXPECT_TRUE(config->tie_word_embeddings);
}

// The rule that keeps cached keys valid: one factor set per model, long iff the model serves
// positions beyond the original context.
TEST(Phi3Config, TheMaxModelLengthPicksShortOrLongFactors) {
  auto config = Parse(Phi4MiniJson());
  ASSERT_TRUE(config.ok()) << config.status();
  const LongRopeScaling& r = config->longrope;
  EXPECT_EQ(&r.FactorsFor(2048), &r.short_factor);
  EXPECT_EQ(&r.FactorsFor(4096), &r.short_factor);
  EXPECT_EQ(&r.FactorsFor(4097), &r.long_factor);
  EXPECT_EQ(&r.FactorsFor(131072), &r.long_factor);
}

// Phi-3-mini-4k-instruct's window of 2047 over a 4096 context slides on every layer; Phi-4-mini's
// 262144 reaches past its context and is dropped.
TEST(Phi3Config, SlidingWindowOfPhi3Mini4k) {
  json j = Phi4MiniJson();
  EXPECT_EQ(Parse(j)->sliding_window, 0);
  j["rope_scaling"] = nullptr;
  j["partial_rotary_factor"] = 1.0;
  j["max_position_embeddings"] = 4096;
  j["sliding_window"] = 2047;
  auto config = Parse(j);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->sliding_window, 2047);
  EXPECT_EQ(config->LayerWindow(0), 2047);
  EXPECT_EQ(config->LayerWindow(31), 2047);
  EXPECT_EQ(config->UniformSlidingWindow(), 2047);
  auto again = ModelConfig::FromJson(config->ToJson(), "roundtrip");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->sliding_window, 2047);
  j["sliding_window"] = 0;
  ExpectError(Parse(j), absl::StatusCode::kInvalidArgument,
              {"field \"sliding_window\" must be positive"});
}

TEST(Phi3Config, NoScalingFullRotaryAndTheDefaults) {
  json j = Phi4MiniJson();
  j["rope_scaling"] = nullptr;
  j.erase("partial_rotary_factor");
  j.erase("original_max_position_embeddings");
  j.erase("max_position_embeddings");
  j.erase("sliding_window");
  auto config = Parse(j);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->rotary_dim, 0);
  EXPECT_EQ(config->rotated_dims(), 128);
  EXPECT_FALSE(config->longrope.enabled());
  EXPECT_EQ(config->max_position_embeddings, 4096);  // Phi3Config's default
  // "su" is LongRoPE's old name; an explicit attention_factor wins over the computed one.
  j = Phi4MiniJson();
  j["rope_scaling"]["type"] = "su";
  j["rope_scaling"]["attention_factor"] = 1.25;
  config = Parse(j);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->longrope.enabled());
  EXPECT_DOUBLE_EQ(config->longrope.attention_factor, 1.25);
}

TEST(Phi3Config, MalformedOrUnsupportedRopeIsAClearError) {
  json j = Phi4MiniJson();
  j["rope_scaling"]["short_factor"].erase(0);
  ExpectError(Parse(j), absl::StatusCode::kInvalidArgument,
              {kSource, "rope_scaling: field \"short_factor\" has 47 values",
               "expected rotary_dim / 2 = 48"});
  j = Phi4MiniJson();
  j["rope_scaling"]["long_factor"] = "1.0";
  ExpectError(Parse(j), absl::StatusCode::kInvalidArgument,
              {"field \"long_factor\" must be a list of numbers"});
  j = Phi4MiniJson();
  j["rope_scaling"]["long_factor"][3] = 0;
  ExpectError(Parse(j), absl::StatusCode::kInvalidArgument,
              {"field \"long_factor\" must hold positive numbers, got 0"});
  j = Phi4MiniJson();
  j["rope_scaling"].erase("long_factor");
  ExpectError(Parse(j), absl::StatusCode::kInvalidArgument,
              {"field \"long_factor\" is required for longrope"});
  for (const char* type : {"yarn", "linear", "llama3", "dynamic"}) {
    j = Phi4MiniJson();
    j["rope_scaling"]["type"] = type;
    ExpectError(
        Parse(j), absl::StatusCode::kUnimplemented,
        {kSource, absl::StrCat("rope_scaling type \"", type, "\" is not supported"), "longrope"});
  }
  j = Phi4MiniJson();
  j["rope_scaling"]["mscale"] = 2.0;
  ExpectError(Parse(j), absl::StatusCode::kUnimplemented,
              {"field \"mscale\" is not supported for longrope"});
  // LongRoPE belongs to Phi-3 here.
  j = Phi4MiniJson();
  j["architectures"] = {"LlamaForCausalLM"};
  j["partial_rotary_factor"] = 1.0;
  ExpectError(Parse(j), absl::StatusCode::kUnimplemented,
              {"rope_scaling type \"longrope\" is not supported", "longrope for Phi3ForCausalLM"});
}

TEST(Phi3Config, BadPartialRotaryAndPhi3SmallAreRejected) {
  json j = Phi4MiniJson();
  j["rope_scaling"] = nullptr;
  j["partial_rotary_factor"] = 1.5;
  ExpectError(Parse(j), absl::StatusCode::kInvalidArgument,
              {"field \"partial_rotary_factor\" must be in (0, 1]"});
  j["partial_rotary_factor"] = 0.7;  // 89.6 -> 89 dims: odd
  ExpectError(Parse(j), absl::StatusCode::kInvalidArgument,
              {"field \"partial_rotary_factor\"", "gives 89 rotary dims; they must be even"});
  j = Phi4MiniJson();
  j["architectures"] = {"Phi3SmallForCausalLM"};
  ExpectError(Parse(j), absl::StatusCode::kUnimplemented,
              {kSource, "Phi3SmallForCausalLM", "blocksparse attention"});
}

TEST(Phi3Config, ToJsonRoundTrips) {
  auto config = Parse(Phi4MiniJson());
  ASSERT_TRUE(config.ok()) << config.status();
  const std::string text = config->ToJson();
  auto again = ModelConfig::FromJson(text, "roundtrip");
  ASSERT_TRUE(again.ok()) << again.status() << "\n" << text;
  EXPECT_EQ(again->architecture, "Phi3ForCausalLM");
  EXPECT_EQ(again->rotary_dim, 96);
  EXPECT_EQ(again->longrope.short_factor, config->longrope.short_factor);
  EXPECT_EQ(again->longrope.long_factor, config->longrope.long_factor);
  EXPECT_EQ(again->longrope.original_max_position_embeddings, 4096);
  EXPECT_DOUBLE_EQ(again->longrope.attention_factor, config->longrope.attention_factor);
  EXPECT_TRUE(again->fused_projections);
}

// Phi-3-mini's config.json names <|endoftext|> (32000) only; its generation_config.json adds
// <|assistant|> (32001) and <|end|> (32007), which end every turn of its chat template.
TEST(Phi3Config, GenerationConfigEosIdsStopGenerationToo) {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string dir = std::string(base != nullptr ? base : "/tmp") + "/pagoda_phi3_XXXXXX";
  ASSERT_NE(mkdtemp(dir.data()), nullptr);
  json j = Phi4MiniJson();
  j["eos_token_id"] = 32000;
  ASSERT_TRUE(WriteStringToFile(dir + "/config.json", j.dump()).ok());
  auto config = ModelConfig::FromDirectory(dir);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_THAT(config->eos_token_ids, ElementsAre(32000));
  ASSERT_TRUE(WriteStringToFile(dir + "/generation_config.json",
                                R"({"bos_token_id": 1, "eos_token_id": [32000, 32001, 32007]})")
                  .ok());
  config = ModelConfig::FromDirectory(dir);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_THAT(config->eos_token_ids, ElementsAre(32000, 32001, 32007));
  ASSERT_TRUE(WriteStringToFile(dir + "/generation_config.json", R"({"eos_token_id": "x"})").ok());
  ExpectError(ModelConfig::FromDirectory(dir), absl::StatusCode::kInvalidArgument,
              {dir + "/generation_config.json", "eos_token_id"});
  ASSERT_TRUE(WriteStringToFile(dir + "/generation_config.json", "[1]").ok());
  ExpectError(ModelConfig::FromDirectory(dir), absl::StatusCode::kInvalidArgument,
              {dir + "/generation_config.json", "not a JSON object"});
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace pagoda
