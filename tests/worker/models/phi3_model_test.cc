// Phi-3 end to end: tiny random Phi3ForCausalLM models of odd sizes (written at test time by
// tests/data/make_phi3_model_fixtures.py: fused qkv_proj and gate_up_proj, GQA ratios 3 and 4,
// head_dim != hidden / heads, partial rotary 0.75, LongRoPE factors that are not all 1) must give
// the greedy tokens and logits of a float64 NumPy forward pass of transformers' Phi3, from
// safetensors and from a GGUF written as llama.cpp's converter writes `phi3`, at tensor parallel
// size 1 and 2, with sliding windows shorter than the sequences (Phi-3-mini-4k's 2047 in small);
// LongRoPE's short factors serve a model whose max length stays within the original context and its
// long factors one beyond it; a fused tensor of the wrong size is refused.
#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/model_source.h"
#include "common/tokenizer/tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/model_harness.h"
#include "tools/generate_command.h"
#include "worker/model_weights.h"

namespace pagoda {
namespace {

using testing::Generation;
using ::testing::HasSubstr;
using testing::RunModel;
using testing::RunModelSharded;

std::string FixtureDir() { return PAGODA_PHI3_MODEL_FIXTURE_DIR; }

// One greedy run of the reference: the model's max length (which picks LongRoPE's factors), the
// prompt, and what transformers' forward gives.
struct Case {
  int64_t max_model_len = 0;
  std::vector<int32_t> prompt;
  std::vector<int32_t> greedy;
  std::vector<std::vector<float>> logits;  // [steps][vocab]
};

std::vector<Case> LoadCases(const std::string& name) {
  absl::StatusOr<std::string> text = ReadFileToString(FixtureDir() + "/" + name + ".json");
  EXPECT_TRUE(text.ok()) << text.status() << " (run through ctest: phi3_model_fixtures writes it)";
  if (!text.ok()) return {};
  const nlohmann::json fixture = nlohmann::json::parse(*text);
  std::vector<Case> cases;
  for (const nlohmann::json& c : fixture.at("cases")) {
    cases.push_back({c["max_model_len"], c["prompt"], c["greedy"], c["logits"]});
  }
  return cases;
}

// The paths of each fixture model and its reference.
struct Fixture {
  std::string name;
  std::vector<std::string> paths;
};

std::vector<Fixture> Fixtures() {
  const std::string dir = FixtureDir() + "/";
  return {{"phi3_partial", {dir + "phi3_partial_hf"}},
          {"phi3_longrope", {dir + "phi3_longrope_hf", dir + "phi3_longrope.gguf"}}};
}

// The fp32 forward against the float64 reference: logits within 1e-4 + 1e-4 |logit| (every
// weight is F32, so only fp32 rounding differs; tensor parallelism only reorders the additions of
// the ranks' partial sums). Every greedy step has a top-two margin of at least 0.05, so the tokens
// must be exactly the reference's.
void ExpectReference(const Generation& got, const Case& want, const std::string& what) {
  ASSERT_EQ(got.tokens.size(), 1u) << what;
  EXPECT_EQ(got.tokens[0], want.greedy) << what;
  ASSERT_EQ(got.logits[0].size(), want.logits.size()) << what;
  for (size_t step = 0; step < want.logits.size(); ++step) {
    ASSERT_EQ(got.logits[0][step].size(), want.logits[step].size()) << what;
    for (size_t i = 0; i < want.logits[step].size(); ++i) {
      const float w = want.logits[step][i];
      ASSERT_NEAR(got.logits[0][step][i], w, 1e-4 + 1e-4 * std::abs(w))
          << what << " step " << step << " token " << i;
    }
  }
}

// Every fixture model from each of its paths, each reference case at tensor parallel size `size`.
void ExpectEveryCase(int32_t size) {
  for (const Fixture& fixture : Fixtures()) {
    const std::vector<Case> cases = LoadCases(fixture.name);
    ASSERT_FALSE(cases.empty()) << fixture.name;
    for (const std::string& path : fixture.paths) {
      for (const Case& c : cases) {
        const int64_t steps = static_cast<int64_t>(c.greedy.size());
        const Generation got =
            size == 1 ? RunModel(path, {c.prompt}, steps, c.max_model_len)
                      : RunModelSharded(path, {c.prompt}, steps, size, c.max_model_len);
        ExpectReference(got, c,
                        absl::StrCat(path, " at TP ", size, ", max_model_len ", c.max_model_len));
      }
    }
  }
}

TEST(Phi3Model, GreedyTokensAndLogitsEqualTheFloat64Reference) { ExpectEveryCase(1); }

// TP 2: 3 of the 6 query heads and 1 of the 2 KV heads per rank (phi3_partial; 4 of 8 and 1 of 2
// for phi3_longrope), each rank reading only its rows of the fused qkv_proj and gate_up_proj.
TEST(Phi3TensorParallel, TwoRanksGiveTheFloat64ReferenceFromSafetensorsAndGguf) {
  ExpectEveryCase(2);
}

// The short and the long factors give different logits on the same prompt: the choice is real
// (the reference above pins which one each max model length takes).
TEST(Phi3LongRope, TheMaxModelLengthPicksTheFactors) {
  const std::vector<Case> cases = LoadCases("phi3_longrope");
  ASSERT_EQ(cases.size(), 2u);
  const Case& short_case = cases[0];
  ASSERT_EQ(short_case.max_model_len, 16);
  const std::string path = FixtureDir() + "/phi3_longrope_hf";
  const int64_t steps = static_cast<int64_t>(short_case.greedy.size());
  const Generation within = RunModel(path, {short_case.prompt}, steps, 16);
  const Generation beyond = RunModel(path, {short_case.prompt}, steps, 17);
  ASSERT_EQ(within.logits.size(), 1u);
  ASSERT_EQ(beyond.logits.size(), 1u);
  EXPECT_GT(testing::MaxAbsDiff(within.logits[0], beyond.logits[0]), 0.01f);
}

// The phi3 GGUF's metadata and factor tensors give the config.json of its safetensors twin.
TEST(Phi3Config, GgufMetadataGivesTheHuggingFaceConfig) {
  absl::StatusOr<ModelSource> gguf = ModelSource::Open(FixtureDir() + "/phi3_longrope.gguf");
  ASSERT_TRUE(gguf.ok()) << gguf.status();
  absl::StatusOr<ModelSource> hf = ModelSource::Open(FixtureDir() + "/phi3_longrope_hf");
  ASSERT_TRUE(hf.ok()) << hf.status();
  for (const ModelConfig* c : {&gguf->config(), &hf->config()}) {
    EXPECT_EQ(c->architecture, "Phi3ForCausalLM");
    EXPECT_TRUE(c->fused_projections);
    EXPECT_EQ(c->head_dim, 16);
    EXPECT_EQ(c->rotary_dim, 12);
    EXPECT_EQ(c->num_attention_heads, 8);
    EXPECT_EQ(c->num_key_value_heads, 2);
    EXPECT_EQ(c->max_position_embeddings, 64);
    EXPECT_TRUE(c->tie_word_embeddings);
    EXPECT_EQ(c->sliding_window, 9);  // phi3.attention.sliding_window / config.json
    EXPECT_TRUE(c->sliding_layers.empty());
    EXPECT_EQ(c->UniformSlidingWindow(), 9);
    EXPECT_EQ(c->longrope.original_max_position_embeddings, 16);
    EXPECT_NEAR(c->longrope.attention_factor, std::sqrt(1.5), 1e-6);
    EXPECT_EQ(c->longrope.short_factor, (std::vector<double>{1.0, 1.25, 1.5, 2.0, 3.0, 5.0}));
    EXPECT_EQ(c->longrope.long_factor, (std::vector<double>{1.5, 2.5, 4.0, 8.0, 16.0, 40.0}));
  }
  EXPECT_EQ(gguf->config().hidden_size, hf->config().hidden_size);
  EXPECT_EQ(gguf->config().intermediate_size, hf->config().intermediate_size);
  EXPECT_EQ(gguf->config().rope_theta, hf->config().rope_theta);
}

// A shard's dummy weights are slices of the unsharded fused tensors: rank 1 of 2 holds rows
// [q of heads 3-5; k of KV head 1; v of KV head 1] of qkv_proj and the second halves of gate and
// of up.
TEST(Phi3Weights, EachRankTakesItsRowsOfEveryPartOfTheFusedTensors) {
  absl::StatusOr<ModelSource> model = ModelSource::Open(FixtureDir() + "/phi3_partial_hf");
  ASSERT_TRUE(model.ok()) << model.status();
  const ModelConfig& config = model->config();
  absl::StatusOr<ModelWeights> whole = LoadModelWeights(*model);
  ASSERT_TRUE(whole.ok()) << whole.status();
  absl::StatusOr<ModelWeights> shard = LoadModelWeights(*model, {.rank = 1, .size = 2});
  ASSERT_TRUE(shard.ok()) << shard.status();
  const int64_t hidden = config.hidden_size, hd = config.head_dim, inter = config.intermediate_size;
  const int64_t q = config.q_size(), kv = config.kv_size();
  const std::vector<float> all_qkv = whole->layers[1].qkv_proj.ToFloats();
  const std::vector<float> rank_qkv = shard->layers[1].qkv_proj.ToFloats();
  std::vector<int64_t> rows;
  for (int64_t r = 3 * hd; r < 6 * hd; ++r) rows.push_back(r);                // q, heads 3-5
  for (int64_t r = q + hd; r < q + 2 * hd; ++r) rows.push_back(r);            // k, KV head 1
  for (int64_t r = q + kv + hd; r < q + kv + 2 * hd; ++r) rows.push_back(r);  // v, KV head 1
  ASSERT_EQ(rank_qkv.size(), rows.size() * hidden);
  for (size_t i = 0; i < rows.size(); ++i) {
    for (int64_t c = 0; c < hidden; ++c) {
      ASSERT_EQ(rank_qkv[i * hidden + c], all_qkv[rows[i] * hidden + c]) << "row " << i;
    }
  }
  const std::vector<float> all_gate_up = whole->layers[0].gate_up_proj.ToFloats();
  const std::vector<float> rank_gate_up = shard->layers[0].gate_up_proj.ToFloats();
  ASSERT_EQ(rank_gate_up.size(), static_cast<size_t>(inter * hidden));
  for (int64_t i = 0; i < inter; ++i) {
    // Rows [inter/2, inter) of gate, then of up.
    const int64_t from = i < inter / 2 ? inter / 2 + i : inter + i;
    for (int64_t c = 0; c < hidden; ++c) {
      ASSERT_EQ(rank_gate_up[i * hidden + c], all_gate_up[from * hidden + c]) << "row " << i;
    }
  }
}

// A qkv_proj one row short of [q + 2 kv, hidden] is refused, naming the tensor and both shapes.
TEST(Phi3Weights, AQkvProjOfTheWrongSizeIsAClearError) {
  absl::StatusOr<ModelSource> model = ModelSource::Open(FixtureDir() + "/phi3_bad_qkv_hf");
  ASSERT_TRUE(model.ok()) << model.status();
  const absl::Status status = LoadModelWeights(*model).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("model.layers.0.self_attn.qkv_proj.weight has shape [159, 64]"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("implies [160, 64]"));
}

// The phi3 GGUF's own chat template closes every turn with <|end|>, and <|end|> stops generation
// (a stop id by its text, as llama.cpp decides) beside the eos <|endoftext|>.
TEST(Phi3Tokenizer, GgufEndTokenStopsAndTheChatTemplateRenders) {
  absl::StatusOr<ModelSource> model = ModelSource::Open(FixtureDir() + "/phi3_longrope.gguf");
  ASSERT_TRUE(model.ok()) << model.status();
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = model->LoadTokenizer();
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  const std::optional<int32_t> end = (*tokenizer)->TokenToId("<|end|>");
  const std::optional<int32_t> endoftext = (*tokenizer)->TokenToId("<|endoftext|>");
  ASSERT_TRUE(end.has_value() && endoftext.has_value());
  EXPECT_EQ(*end, 93);
  const std::vector<int32_t> stops = EosTokenIds(model->config().eos_token_ids, **tokenizer);
  EXPECT_THAT(stops, ::testing::Contains(*end));
  EXPECT_THAT(stops, ::testing::Contains(*endoftext));
  absl::StatusOr<ChatTemplate> chat = model->LoadChatTemplate();
  ASSERT_TRUE(chat.ok()) << chat.status();
  const nlohmann::json messages = {{{"role", "user"}, {"content", "Hi"}}};
  absl::StatusOr<std::string> prompt =
      chat->Render(messages, true, {{"eos_token", "<|endoftext|>"}});
  ASSERT_TRUE(prompt.ok()) << prompt.status();
  EXPECT_EQ(*prompt, "<|user|>\nHi<|end|>\n<|assistant|>\n");
}

// `pagoda generate` on the phi3 GGUF (engine, paged KV cache of 4-token blocks, blocks behind the
// window of 9 freed): --max-model-len picks the factors as above and gives the reference's greedy
// tokens; without --ignore-eos the long case stops at <|end|> (its fifth token), which ends the
// token ids and not the text.
TEST(Phi3Generate, TheEngineGivesTheReferenceAndStopsAtEnd) {
  const std::vector<Case> cases = LoadCases("phi3_longrope");
  ASSERT_EQ(cases.size(), 2u);
  const std::string dir = ::testing::TempDir();
  const auto generate = [&](const Case& c, bool ignore_eos) -> nlohmann::json {
    const std::string prompts = dir + "/phi3_prompts.jsonl";
    const std::string output = dir + "/phi3_out.jsonl";
    EXPECT_TRUE(
        WriteStringToFile(prompts, nlohmann::json({{"prompt_token_ids", c.prompt}}).dump()).ok());
    std::vector<std::string> args = {"--model",         FixtureDir() + "/phi3_longrope.gguf",
                                     "--prompts-file",  prompts,
                                     "--max-tokens",    std::to_string(c.greedy.size()),
                                     "--temperature",   "0",
                                     "--max-model-len", std::to_string(c.max_model_len),
                                     "--block-size",    "4",
                                     "--output",        output,
                                     "--log-level",     "warn"};
    if (ignore_eos) args.push_back("--ignore-eos");
    std::vector<const char*> argv;
    for (const std::string& a : args) argv.push_back(a.c_str());
    EXPECT_EQ(RunGenerateCommand(static_cast<int>(argv.size()), argv.data()), 0);
    absl::StatusOr<std::string> text = ReadFileToString(output);
    EXPECT_TRUE(text.ok()) << text.status();
    return text.ok() ? nlohmann::json::parse(*text) : nlohmann::json();
  };
  for (const Case& c : cases) {
    const nlohmann::json out = generate(c, /*ignore_eos=*/true);
    EXPECT_EQ(out["token_ids"], c.greedy) << "max_model_len " << c.max_model_len;
  }
  const Case& long_case = cases[1];
  ASSERT_EQ(long_case.greedy[4], 93) << "the fixture's long case should reach <|end|>";
  const nlohmann::json stopped = generate(long_case, /*ignore_eos=*/false);
  EXPECT_EQ(stopped["finish_reason"], "stop");
  EXPECT_EQ(stopped["token_ids"],
            std::vector<int32_t>(long_case.greedy.begin(), long_case.greedy.begin() + 5));
  EXPECT_EQ(stopped["text"], "t68t68t13t31");
}

// A GGUF whose LongRoPE factor tensor does not hold rotary_dim / 2 values is refused, naming it.
TEST(Phi3Config, GgufFactorsOfTheWrongLengthAreAClearError) {
  const absl::Status status = ModelSource::Open(FixtureDir() + "/phi3_bad_factors.gguf").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(
      std::string(status.message()),
      HasSubstr("tensor \"rope_factors_long.weight\" must hold 6 float32 LongRoPE factors"));
}

}  // namespace
}  // namespace pagoda
