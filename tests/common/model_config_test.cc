#include "common/model_config.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "common/file_util.h"
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

// A SmolLM2-135M-like config.
json LlamaJson() {
  return json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "model_type": "llama",
    "vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536,
    "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
    "hidden_act": "silu", "rms_norm_eps": 1e-05, "rope_theta": 100000,
    "max_position_embeddings": 8192, "tie_word_embeddings": true, "attention_bias": false,
    "bos_token_id": 0, "eos_token_id": 0, "torch_dtype": "bfloat16", "rope_scaling": null})");
}

absl::StatusOr<ModelConfig> Parse(const json& config) { return testing::ParseConfig(config); }

TEST(ModelConfig, ParsesALlamaConfig) {
  auto config = Parse(LlamaJson());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->architecture, "LlamaForCausalLM");
  EXPECT_EQ(config->vocab_size, 49152);
  EXPECT_EQ(config->hidden_size, 576);
  EXPECT_EQ(config->intermediate_size, 1536);
  EXPECT_EQ(config->num_hidden_layers, 30);
  EXPECT_EQ(config->num_attention_heads, 9);
  EXPECT_EQ(config->num_key_value_heads, 3);
  EXPECT_EQ(config->head_dim, 64);
  EXPECT_EQ(config->q_size(), 576);
  EXPECT_EQ(config->kv_size(), 192);
  EXPECT_DOUBLE_EQ(config->rms_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(config->rope_theta, 100000.0);
  EXPECT_EQ(config->rope_scaling.factor, 0.0);
  EXPECT_EQ(config->max_position_embeddings, 8192);
  EXPECT_TRUE(config->tie_word_embeddings);
  EXPECT_FALSE(config->attention_bias);
  EXPECT_FALSE(config->o_proj_bias);
  EXPECT_EQ(config->bos_token_id, 0);
  EXPECT_THAT(config->eos_token_ids, ElementsAre(0));
  EXPECT_EQ(config->torch_dtype, DType::kBF16);
}

TEST(ModelConfig, AppliesTransformersDefaults) {
  json j = LlamaJson();
  for (const char* key : {"num_key_value_heads", "torch_dtype", "rms_norm_eps", "rope_theta",
                          "max_position_embeddings", "tie_word_embeddings", "eos_token_id"}) {
    j.erase(key);
  }
  j["bos_token_id"] = nullptr;
  j["num_attention_heads"] = 8;
  auto config = Parse(j);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->num_key_value_heads, 8);
  EXPECT_EQ(config->head_dim, 72);
  EXPECT_EQ(config->torch_dtype, DType::kF32);
  EXPECT_DOUBLE_EQ(config->rms_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(config->rope_theta, 10000.0);
  EXPECT_EQ(config->max_position_embeddings, 2048);
  EXPECT_FALSE(config->tie_word_embeddings);
  EXPECT_EQ(config->bos_token_id, -1);
  EXPECT_TRUE(config->eos_token_ids.empty());
}

TEST(ModelConfig, ReadsEosListsAndExplicitHeadDim) {
  json j = LlamaJson();
  j["eos_token_id"] = {128001, 128008, 128009};
  j["head_dim"] = 32;  // need not be hidden / heads
  j["torch_dtype"] = "float16";
  auto config = Parse(j);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_THAT(config->eos_token_ids, ElementsAre(128001, 128008, 128009));
  EXPECT_EQ(config->head_dim, 32);
  EXPECT_EQ(config->q_size(), 288);
  EXPECT_EQ(config->torch_dtype, DType::kF16);
}

TEST(ModelConfig, LlamaAttentionBiasCoversOProj) {
  json j = LlamaJson();
  j["attention_bias"] = true;
  auto config = Parse(j);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->attention_bias);
  EXPECT_TRUE(config->o_proj_bias);
}

TEST(ModelConfig, Qwen2HasQkvBiasButNoOProjBias) {
  json j = LlamaJson();
  j["architectures"] = {"Qwen2ForCausalLM"};
  j["model_type"] = "qwen2";
  j["sliding_window"] = 4096;  // ignored: use_sliding_window defaults to false
  j.erase("attention_bias");
  auto config = Parse(j);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->attention_bias);
  EXPECT_FALSE(config->o_proj_bias);

  EXPECT_EQ(config->sliding_window, 0);

  // transformers' Qwen2Attention: the layers from max_window_layers on slide.
  j["use_sliding_window"] = true;
  j["max_window_layers"] = 1;
  config = Parse(j);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->sliding_window, 4096);
  EXPECT_EQ(config->LayerWindow(0), 0);
  EXPECT_EQ(config->LayerWindow(1), 4096);
  EXPECT_EQ(config->UniformSlidingWindow(), 0);  // layer 0 attends to everything
  auto again = ModelConfig::FromJson(config->ToJson(), "roundtrip");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->sliding_layers, config->sliding_layers);
  j["max_window_layers"] = 0;
  EXPECT_EQ(Parse(j)->UniformSlidingWindow(), 4096);
  j.erase("max_window_layers");  // transformers' default: 28 of the 30 layers attend fully
  EXPECT_EQ(Parse(j)->LayerWindow(27), 0);
  EXPECT_EQ(Parse(j)->LayerWindow(28), 4096);
  j["max_window_layers"] = 30;  // no layer slides
  EXPECT_EQ(Parse(j)->sliding_window, 0);
  j["max_window_layers"] = -1;
  ExpectError(Parse(j), absl::StatusCode::kInvalidArgument, {kSource, "max_window_layers"});
}

TEST(ModelConfig, Qwen3HasQkNormAnExplicitHeadDimAndNoBiasByDefault) {
  json j = LlamaJson();
  j["architectures"] = {"Qwen3ForCausalLM"};
  j["model_type"] = "qwen3";
  j["head_dim"] = 16;  // 9 heads * 16 != hidden_size: Qwen3 sets head_dim explicitly
  j["sliding_window"] = nullptr;
  j.erase("attention_bias");
  auto config = Parse(j);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->qk_norm);
  EXPECT_EQ(config->head_dim, 16);
  EXPECT_EQ(config->q_size(), 9 * 16);
  EXPECT_FALSE(config->attention_bias);
  EXPECT_FALSE(config->o_proj_bias);

  j["attention_bias"] = true;  // transformers' Qwen3Attention: q/k/v and o_proj alike
  config = Parse(j);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->attention_bias);
  EXPECT_TRUE(config->o_proj_bias);
  EXPECT_FALSE(Parse(LlamaJson())->qk_norm);

  j["use_sliding_window"] = true;
  j["sliding_window"] = 4096;
  j["max_window_layers"] = 0;
  EXPECT_EQ(Parse(j)->UniformSlidingWindow(), 4096);
}

TEST(ModelConfig, MistralAcceptsNullHeadDimAndSlidingWindow) {
  json j = LlamaJson();
  j["architectures"] = {"MistralForCausalLM"};
  j["model_type"] = "mistral";
  j["head_dim"] = nullptr;
  j["sliding_window"] = nullptr;
  auto config = Parse(j);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->architecture, "MistralForCausalLM");
  EXPECT_EQ(config->head_dim, 64);
  EXPECT_FALSE(config->attention_bias);

  EXPECT_EQ(config->sliding_window, 0);

  j["sliding_window"] = 16384;  // at least max_position_embeddings: a no-op
  EXPECT_EQ(Parse(j)->sliding_window, 0);
  j["sliding_window"] = 4096;  // Mistral 7B v0.1: every layer slides
  config = Parse(j);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->sliding_window, 4096);
  EXPECT_TRUE(config->sliding_layers.empty());
  EXPECT_EQ(config->LayerWindow(1), 4096);
  EXPECT_EQ(config->UniformSlidingWindow(), 4096);
  auto again = ModelConfig::FromJson(config->ToJson(), "roundtrip");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->sliding_window, 4096);
  j.erase("sliding_window");  // transformers' MistralConfig default
  EXPECT_EQ(Parse(j)->sliding_window, 4096);
  j["sliding_window"] = 0;
  ExpectError(Parse(j), absl::StatusCode::kInvalidArgument, {kSource, "sliding_window"});
}

TEST(ModelConfig, ArchitectureFallsBackToModelType) {
  json j = LlamaJson();
  j.erase("architectures");
  auto config = Parse(j);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->architecture, "LlamaForCausalLM");
}

TEST(ModelConfig, RejectsUnsupportedArchitectures) {
  json j = LlamaJson();
  j["architectures"] = {"GPT2LMHeadModel"};
  ExpectError(
      Parse(j), absl::StatusCode::kInvalidArgument,
      {kSource, "GPT2LMHeadModel", "LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM"});
}

TEST(ModelConfig, ParsesLlama3RopeScaling) {
  json j = LlamaJson();
  j["rope_scaling"] = {{"rope_type", "llama3"},
                       {"factor", 8.0},
                       {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0},
                       {"original_max_position_embeddings", 8192}};
  auto config = Parse(j);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_DOUBLE_EQ(config->rope_scaling.factor, 8.0);
  EXPECT_DOUBLE_EQ(config->rope_scaling.low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(config->rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(config->rope_scaling.original_max_position_embeddings, 8192);

  j["rope_scaling"] = {{"type", "llama3"},
                       {"factor", 32},
                       {"low_freq_factor", 2},
                       {"high_freq_factor", 8},
                       {"original_max_position_embeddings", 4096}};
  config = Parse(j);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_DOUBLE_EQ(config->rope_scaling.factor, 32.0);
  EXPECT_EQ(config->rope_scaling.original_max_position_embeddings, 4096);
}

TEST(ModelConfig, OtherRopeScalingTypesAreUnimplemented) {
  json j = LlamaJson();
  for (const char* type : {"linear", "dynamic", "yarn"}) {
    j["rope_scaling"] = {{"type", type}, {"factor", 2.0}};
    ExpectError(Parse(j), absl::StatusCode::kUnimplemented, {kSource, type});
  }
  j["rope_scaling"] = "llama3";
  ExpectError(Parse(j), absl::StatusCode::kInvalidArgument, {kSource, "rope_scaling"});
  j["rope_scaling"] = {{"rope_type", "llama3"}};
  ExpectError(Parse(j), absl::StatusCode::kInvalidArgument, {kSource, "factor"});
}

TEST(ModelConfig, RejectsWrongTypesAndValues) {
  struct Case {
    const char* field;
    json value;
  };
  const Case cases[] = {
      {"hidden_size", "64"},
      {"hidden_size", 0},
      {"hidden_size", -576},
      {"hidden_size", 576.5},
      {"vocab_size", true},
      {"num_hidden_layers", json::array()},
      {"num_key_value_heads", 2},  // does not divide 9 heads
      {"num_attention_heads", 7},  // does not divide hidden 576 (no head_dim)
      {"rms_norm_eps", "1e-5"},
      {"rms_norm_eps", -1.0},
      {"rope_theta", 0},
      {"tie_word_embeddings", 1},
      {"eos_token_id", "</s>"},
      {"eos_token_id", json::array({1, "x"})},
      {"torch_dtype", "float64"},
      {"torch_dtype", 16},
      {"architectures", "LlamaForCausalLM"},
      {"intermediate_size", 1e300},
  };
  for (const Case& c : cases) {
    json j = LlamaJson();
    j[c.field] = c.value;
    SCOPED_TRACE(j[c.field].dump());
    ExpectError(Parse(j), absl::StatusCode::kInvalidArgument, {kSource, c.field});
  }
  json j = LlamaJson();
  j.erase("hidden_size");
  ExpectError(Parse(j), absl::StatusCode::kInvalidArgument, {kSource, "hidden_size", "required"});
  j = LlamaJson();
  j["hidden_act"] = "gelu";
  ExpectError(Parse(j), absl::StatusCode::kUnimplemented, {kSource, "gelu"});
  j = LlamaJson();
  j["vocab_size"] = int64_t{1} << 40;
  ExpectError(Parse(j), absl::StatusCode::kInvalidArgument, {kSource, "implausibly large"});
}

TEST(ModelConfig, RejectsInvalidJson) {
  ExpectError(ModelConfig::FromJson("{\"hidden_size\": 64,", kSource),
              absl::StatusCode::kInvalidArgument, {kSource, "not valid JSON"});
  ExpectError(ModelConfig::FromJson("[1, 2]", kSource), absl::StatusCode::kInvalidArgument,
              {kSource, "not a JSON object"});
  ExpectError(ModelConfig::FromJson("", kSource), absl::StatusCode::kInvalidArgument, {kSource});
}

TEST(ModelConfig, ToJsonRoundTrips) {
  for (const char* arch :
       {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"}) {
    json j = LlamaJson();
    j["architectures"] = {arch};
    j.erase("model_type");
    j["eos_token_id"] = {2, 3};
    j["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", 8.0},
                         {"low_freq_factor", 1.0},
                         {"high_freq_factor", 4.0},
                         {"original_max_position_embeddings", 8192}};
    j["sliding_window"] = nullptr;
    auto config = Parse(j);
    ASSERT_TRUE(config.ok()) << config.status();
    const std::string text = config->ToJson();
    const json written = json::parse(text);
    EXPECT_EQ(written["architectures"][0], arch);
    EXPECT_TRUE(written.contains("model_type"));
    auto again = ModelConfig::FromJson(text, "roundtrip");
    ASSERT_TRUE(again.ok()) << again.status() << "\n" << text;
    EXPECT_EQ(again->architecture, config->architecture);
    EXPECT_EQ(again->vocab_size, config->vocab_size);
    EXPECT_EQ(again->hidden_size, config->hidden_size);
    EXPECT_EQ(again->intermediate_size, config->intermediate_size);
    EXPECT_EQ(again->num_hidden_layers, config->num_hidden_layers);
    EXPECT_EQ(again->num_attention_heads, config->num_attention_heads);
    EXPECT_EQ(again->num_key_value_heads, config->num_key_value_heads);
    EXPECT_EQ(again->head_dim, config->head_dim);
    EXPECT_EQ(again->rms_norm_eps, config->rms_norm_eps);
    EXPECT_EQ(again->rope_theta, config->rope_theta);
    EXPECT_EQ(again->rope_scaling.factor, config->rope_scaling.factor);
    EXPECT_EQ(again->rope_scaling.original_max_position_embeddings,
              config->rope_scaling.original_max_position_embeddings);
    EXPECT_EQ(again->max_position_embeddings, config->max_position_embeddings);
    EXPECT_EQ(again->tie_word_embeddings, config->tie_word_embeddings);
    EXPECT_EQ(again->attention_bias, config->attention_bias);
    EXPECT_EQ(again->o_proj_bias, config->o_proj_bias);
    EXPECT_EQ(again->qk_norm, config->qk_norm);
    EXPECT_EQ(again->bos_token_id, config->bos_token_id);
    EXPECT_EQ(again->eos_token_ids, config->eos_token_ids);
    EXPECT_EQ(again->torch_dtype, config->torch_dtype);
  }
}

TEST(ModelConfig, FromDirectoryNamesTheFile) {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string dir = std::string(base != nullptr ? base : "/tmp") + "/pagoda_config_XXXXXX";
  ASSERT_NE(mkdtemp(dir.data()), nullptr);
  ExpectError(ModelConfig::FromDirectory(dir), absl::StatusCode::kNotFound, {dir + "/config.json"});
  ASSERT_TRUE(WriteStringToFile(dir + "/config.json", "{not json").ok());
  ExpectError(ModelConfig::FromDirectory(dir), absl::StatusCode::kInvalidArgument,
              {dir + "/config.json", "not valid JSON"});
  json j = LlamaJson();
  j["hidden_size"] = "576";
  ASSERT_TRUE(WriteStringToFile(dir + "/config.json", j.dump()).ok());
  ExpectError(ModelConfig::FromDirectory(dir), absl::StatusCode::kInvalidArgument,
              {dir + "/config.json", "hidden_size", "\"576\""});
  ASSERT_TRUE(WriteStringToFile(dir + "/config.json", LlamaJson().dump()).ok());
  EXPECT_TRUE(ModelConfig::FromDirectory(dir).ok());
  std::filesystem::remove_all(dir);
}

// generation_config.json's eos_token_id joins config.json's (Gemma's <end_of_turn> lives there).
TEST(ModelConfig, FromDirectoryAddsTheGenerationConfigsEosIds) {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string dir = std::string(base != nullptr ? base : "/tmp") + "/pagoda_config_XXXXXX";
  ASSERT_NE(mkdtemp(dir.data()), nullptr);
  json j = LlamaJson();
  j["eos_token_id"] = 1;
  ASSERT_TRUE(WriteStringToFile(dir + "/config.json", j.dump()).ok());
  ASSERT_TRUE(WriteStringToFile(dir + "/generation_config.json",
                                R"({"bos_token_id": 2, "eos_token_id": [1, 107]})")
                  .ok());
  absl::StatusOr<ModelConfig> config = ModelConfig::FromDirectory(dir);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_THAT(config->eos_token_ids, ElementsAre(1, 107));
  ASSERT_TRUE(WriteStringToFile(dir + "/generation_config.json", R"({"eos_token_id": "x"})").ok());
  ExpectError(ModelConfig::FromDirectory(dir), absl::StatusCode::kInvalidArgument,
              {dir + "/generation_config.json", "eos_token_id"});
  ASSERT_TRUE(WriteStringToFile(dir + "/generation_config.json", "[1]").ok());
  ExpectError(ModelConfig::FromDirectory(dir), absl::StatusCode::kInvalidArgument,
              {dir + "/generation_config.json", "not a JSON object"});
  std::filesystem::remove_all(dir);
}

// A Gemma 2 config as google/gemma-2-2b-it ships it (sizes shrunk).
json Gemma2Json() {
  return json::parse(R"({
    "architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2",
    "vocab_size": 256000, "hidden_size": 2304, "intermediate_size": 9216,
    "num_hidden_layers": 6, "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256,
    "hidden_act": "gelu_pytorch_tanh", "hidden_activation": "gelu_pytorch_tanh",
    "query_pre_attn_scalar": 256, "attn_logit_softcapping": 50.0,
    "final_logit_softcapping": 30.0, "sliding_window": 4096, "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-06, "rope_theta": 10000.0, "attention_bias": false,
    "bos_token_id": 2, "eos_token_id": [1, 107], "pad_token_id": 0, "torch_dtype": "float32"})");
}

TEST(ModelConfig, ParsesAGemma2Config) {
  auto config = Parse(Gemma2Json());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->architecture, "Gemma2ForCausalLM");
  EXPECT_EQ(config->hidden_act, MlpActivation::kGeluTanh);
  EXPECT_EQ(config->head_dim, 256);
  EXPECT_EQ(config->query_pre_attn_scalar, 256);
  EXPECT_EQ(config->attn_logit_softcap, 50.0);
  EXPECT_EQ(config->final_logit_softcap, 30.0);
  EXPECT_TRUE(config->tie_word_embeddings);  // Gemma's default
  EXPECT_FALSE(config->qk_norm);
  EXPECT_EQ(config->sliding_window, 4096);
  // transformers' Gemma2Config: even layers slide.
  EXPECT_THAT(config->sliding_layers, ElementsAre(true, false, true, false, true, false));
  EXPECT_EQ(config->LayerWindow(0), 4096);
  EXPECT_EQ(config->LayerWindow(1), 0);
  EXPECT_THAT(config->eos_token_ids, ElementsAre(1, 107));
}

TEST(ModelConfig, Gemma2DefaultsAreTheConfigClasssOnes) {
  json j = Gemma2Json();
  for (const char* field :
       {"head_dim", "query_pre_attn_scalar", "attn_logit_softcapping", "final_logit_softcapping",
        "sliding_window", "hidden_activation", "tie_word_embeddings"}) {
    j.erase(field);
  }
  auto config = Parse(j);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->head_dim, 256);
  EXPECT_EQ(config->query_pre_attn_scalar, 256);
  EXPECT_EQ(config->attn_logit_softcap, 50.0);
  EXPECT_EQ(config->final_logit_softcap, 30.0);
  EXPECT_EQ(config->sliding_window, 4096);
  EXPECT_TRUE(config->tie_word_embeddings);
  j["attn_logit_softcapping"] = nullptr;  // null: no soft-cap
  j["sliding_window"] = nullptr;          // null: no window
  config = Parse(j);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->attn_logit_softcap, 0.0);
  EXPECT_EQ(config->sliding_window, 0);
  EXPECT_EQ(config->LayerWindow(0), 0);
}

// A Gemma 3 text config as google/gemma-3-4b-it's text_config (sizes shrunk).
json Gemma3Json() {
  return json::parse(R"({
    "architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text",
    "vocab_size": 262208, "hidden_size": 2560, "intermediate_size": 10240,
    "num_hidden_layers": 8, "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256,
    "hidden_activation": "gelu_pytorch_tanh", "query_pre_attn_scalar": 256,
    "sliding_window": 1024, "sliding_window_pattern": 6, "max_position_embeddings": 131072,
    "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0,
    "rope_scaling": {"rope_type": "linear", "factor": 8.0},
    "final_logit_softcapping": null, "attn_logit_softcapping": null,
    "rms_norm_eps": 1e-06, "bos_token_id": 2, "eos_token_id": [1, 106],
    "torch_dtype": "bfloat16"})");
}

TEST(ModelConfig, ParsesAGemma3Config) {
  auto config = Parse(Gemma3Json());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->architecture, "Gemma3ForCausalLM");
  EXPECT_TRUE(config->qk_norm);
  EXPECT_EQ(config->rope_theta, 1e6);
  EXPECT_EQ(config->rope_local_theta, 1e4);
  EXPECT_EQ(config->rope_linear_factor, 8.0);
  EXPECT_EQ(config->rope_scaling.factor, 0.0);  // not Llama 3 scaling
  EXPECT_EQ(config->attn_logit_softcap, 0.0);
  EXPECT_EQ(config->final_logit_softcap, 0.0);
  EXPECT_EQ(config->sliding_window, 1024);
  // sliding_window_pattern 6: every sixth layer is global.
  EXPECT_THAT(config->sliding_layers, ElementsAre(true, true, true, true, true, false, true, true));
  // layer_types, when given, decides.
  json j = Gemma3Json();
  j["layer_types"] = {"full_attention", "sliding_attention", "full_attention", "sliding_attention",
                      "full_attention", "full_attention",    "full_attention", "sliding_attention"};
  config = Parse(j);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_THAT(config->sliding_layers,
              ElementsAre(false, true, false, true, false, false, false, true));
  // model_type gemma3_text alone names the architecture.
  j = Gemma3Json();
  j.erase("architectures");
  config = Parse(j);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->architecture, "Gemma3ForCausalLM");
}

TEST(ModelConfig, MalformedGemmaConfigsNameTheField) {
  json j = Gemma2Json();
  j["hidden_activation"] = "relu";
  ExpectError(Parse(j), absl::StatusCode::kInvalidArgument, {"hidden_activation", "relu"});
  j = Gemma2Json();
  j["sliding_window"] = 10000;  // larger than the context
  ExpectError(Parse(j), absl::StatusCode::kInvalidArgument,
              {"sliding_window", "max_position_embeddings (8192)"});
  j = Gemma2Json();
  j["sliding_window"] = 0;
  ExpectError(Parse(j), absl::StatusCode::kInvalidArgument, {"sliding_window", "positive"});
  j = Gemma2Json();
  j["final_logit_softcapping"] = -1.0;
  ExpectError(Parse(j), absl::StatusCode::kInvalidArgument, {"final_logit_softcapping"});
  j = Gemma2Json();
  j["query_pre_attn_scalar"] = "256";
  ExpectError(Parse(j), absl::StatusCode::kInvalidArgument, {"query_pre_attn_scalar"});
  j = Gemma2Json();
  j["layer_types"] = {"sliding_attention"};  // not one per layer
  ExpectError(Parse(j), absl::StatusCode::kInvalidArgument, {"layer_types", "num_hidden_layers"});
  j["layer_types"] = {"sliding_attention", "full_attention", "chunked_attention",
                      "full_attention",    "full_attention", "full_attention"};
  ExpectError(Parse(j), absl::StatusCode::kInvalidArgument, {"layer_types", "entry 2"});
  j = Gemma2Json();
  j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 2.0}};
  ExpectError(Parse(j), absl::StatusCode::kUnimplemented, {"rope_scaling", "linear"});
  j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}};
  ExpectError(Parse(j), absl::StatusCode::kUnimplemented, {"rope_scaling", "Gemma 2"});
  j = Gemma3Json();
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 2.0}};
  ExpectError(Parse(j), absl::StatusCode::kUnimplemented, {"rope_scaling", "yarn"});
  j = Gemma3Json();
  j["sliding_window_pattern"] = 0;
  ExpectError(Parse(j), absl::StatusCode::kInvalidArgument, {"sliding_window_pattern"});
  j = Gemma3Json();
  j["use_bidirectional_attention"] = true;
  ExpectError(Parse(j), absl::StatusCode::kInvalidArgument, {"use_bidirectional_attention"});
  j = Gemma3Json();
  j["architectures"] = {"Gemma3ForConditionalGeneration"};
  ExpectError(Parse(j), absl::StatusCode::kInvalidArgument,
              {"Gemma3ForConditionalGeneration", "not supported"});
}

TEST(ModelConfig, GemmaToJsonRoundTrips) {
  for (const json& j : {Gemma2Json(), Gemma3Json()}) {
    auto config = Parse(j);
    ASSERT_TRUE(config.ok()) << config.status();
    const std::string text = config->ToJson();
    auto again = ModelConfig::FromJson(text, "roundtrip");
    ASSERT_TRUE(again.ok()) << again.status() << "\n" << text;
    EXPECT_EQ(again->architecture, config->architecture);
    EXPECT_EQ(again->hidden_act, config->hidden_act);
    EXPECT_EQ(again->head_dim, config->head_dim);
    EXPECT_EQ(again->query_pre_attn_scalar, config->query_pre_attn_scalar);
    EXPECT_EQ(again->attn_logit_softcap, config->attn_logit_softcap);
    EXPECT_EQ(again->final_logit_softcap, config->final_logit_softcap);
    EXPECT_EQ(again->sliding_window, config->sliding_window);
    EXPECT_EQ(again->sliding_layers, config->sliding_layers);
    EXPECT_EQ(again->rope_theta, config->rope_theta);
    EXPECT_EQ(again->rope_local_theta, config->rope_local_theta);
    EXPECT_EQ(again->rope_linear_factor, config->rope_linear_factor);
    EXPECT_EQ(again->qk_norm, config->qk_norm);
    EXPECT_EQ(again->tie_word_embeddings, config->tie_word_embeddings);
  }
}

TEST(ModelConfig, DTypeNames) {
  EXPECT_EQ(DTypeName(DType::kF32), "float32");
  EXPECT_EQ(DTypeName(DType::kF16), "float16");
  EXPECT_EQ(DTypeName(DType::kBF16), "bfloat16");
}

TEST(CheckTensorParallelSize, NamesTheFieldAndTheSizesThatWork) {
  ModelConfig smollm2;  // SmolLM2-135M: 9 heads, 3 KV heads, intermediate 1536
  smollm2.num_attention_heads = 9;
  smollm2.num_key_value_heads = 3;
  smollm2.intermediate_size = 1536;
  EXPECT_TRUE(CheckTensorParallelSize(smollm2, 1).ok());
  EXPECT_TRUE(CheckTensorParallelSize(smollm2, 3).ok());
  const absl::Status two = CheckTensorParallelSize(smollm2, 2);
  EXPECT_EQ(two.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(two.message()),
              HasSubstr("num_attention_heads (9) is not divisible by the tensor parallel size 2; "
                        "tensor parallel sizes that work for this model: 1, 3"));
  // 9 divides the heads but not intermediate_size.
  EXPECT_THAT(std::string(CheckTensorParallelSize(smollm2, 9).message()),
              HasSubstr("intermediate_size (1536) is not divisible"));
  EXPECT_FALSE(CheckTensorParallelSize(smollm2, 0).ok());
  EXPECT_FALSE(CheckTensorParallelSize(smollm2, kMaxTensorParallelSize + 1).ok());
}

}  // namespace
}  // namespace pagoda
