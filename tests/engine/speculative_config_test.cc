// --speculative-config: vLLM's JSON shape, the n-gram and draft-model methods, clear errors for
// everything else.
#include "engine/speculative_config.h"

#include <string>

#include "engine/engine_config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagoda {
namespace {

using ::testing::HasSubstr;

TEST(SpeculativeConfig, EmptyIsOff) {
  auto config = ParseSpeculativeConfig("");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_FALSE(config->enabled());
  EXPECT_EQ(config->ToJson(), "");
}

TEST(SpeculativeConfig, ParsesNgramAndRoundTrips) {
  auto config = ParseSpeculativeConfig(
      R"({"method": "ngram", "num_speculative_tokens": 5, "prompt_lookup_max": 3,
          "prompt_lookup_min": 1, "disable_by_batch_size": 4})");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->method, SpeculativeMethod::kNgram);
  EXPECT_EQ(config->num_speculative_tokens, 5);
  EXPECT_EQ(config->prompt_lookup_max, 3);
  EXPECT_EQ(config->prompt_lookup_min, 1);
  EXPECT_EQ(config->disable_by_batch_size, 4);
  EXPECT_TRUE(config->prompt_lookup_agreement);  // the default
  auto again = ParseSpeculativeConfig(config->ToJson());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->ToJson(), config->ToJson());

  auto latest_only = ParseSpeculativeConfig(
      R"({"method": "ngram", "num_speculative_tokens": 5, "prompt_lookup_agreement": false})");
  ASSERT_TRUE(latest_only.ok()) << latest_only.status();
  EXPECT_FALSE(latest_only->prompt_lookup_agreement);
  auto latest_again = ParseSpeculativeConfig(latest_only->ToJson());
  ASSERT_TRUE(latest_again.ok()) << latest_again.status();
  EXPECT_FALSE(latest_again->prompt_lookup_agreement);
  EXPECT_EQ(latest_again->prompt_lookup_history_tokens, 0);  // the default: no history

  auto history = ParseSpeculativeConfig(
      R"({"method": "ngram", "num_speculative_tokens": 5, "prompt_lookup_history_tokens": 65536})");
  ASSERT_TRUE(history.ok()) << history.status();
  EXPECT_EQ(history->prompt_lookup_history_tokens, 65536);
  auto history_again = ParseSpeculativeConfig(history->ToJson());
  ASSERT_TRUE(history_again.ok()) << history_again.status();
  EXPECT_EQ(history_again->prompt_lookup_history_tokens, 65536);
}

TEST(SpeculativeConfig, OneLookupBoundMovesTheOtherWhenTheDefaultContradictsIt) {
  auto only_max = ParseSpeculativeConfig(
      R"({"method": "ngram", "num_speculative_tokens": 2, "prompt_lookup_max": 1})");
  ASSERT_TRUE(only_max.ok()) << only_max.status();
  EXPECT_EQ(only_max->prompt_lookup_min, 1);
  auto only_min = ParseSpeculativeConfig(
      R"({"method": "ngram", "num_speculative_tokens": 2, "prompt_lookup_min": 6})");
  ASSERT_TRUE(only_min.ok()) << only_min.status();
  EXPECT_EQ(only_min->prompt_lookup_max, 6);
}

TEST(SpeculativeConfig, RejectsWhatItCannotRun) {
  auto expect = [](const std::string& text, absl::StatusCode code, const std::string& message) {
    auto config = ParseSpeculativeConfig(text);
    ASSERT_FALSE(config.ok()) << text;
    EXPECT_EQ(config.status().code(), code) << text;
    EXPECT_THAT(std::string(config.status().message()), HasSubstr(message)) << text;
  };
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  expect("ngram", kInvalid, "must be a JSON object");
  expect("[1]", kInvalid, "must be a JSON object");
  expect(R"({"num_speculative_tokens": 4})", kInvalid, "or \"model\" (a draft model) is required");
  expect(R"({"method": "eagle", "num_speculative_tokens": 4})", kInvalid, "\"method\" must be");
  expect(R"({"method": "ngram"})", kInvalid, "\"num_speculative_tokens\" is required");
  expect(R"({"method": "ngram", "num_speculative_tokens": 0})", kInvalid, "[1, 16]");
  expect(R"({"method": "ngram", "num_speculative_tokens": 17})", kInvalid, "[1, 16]");
  expect(R"({"method": "ngram", "num_speculative_tokens": "4"})", kInvalid, "integer");
  expect(R"({"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_max": -1})", kInvalid,
         "outside");
  expect(R"({"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_min": 0})", kInvalid,
         "prompt_lookup_min");
  expect(R"({"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_max": 2,
             "prompt_lookup_min": 3})",
         kInvalid, "prompt_lookup_min");
  expect(R"({"method": "ngram", "num_speculative_tokens": 4, "typo": 1})", kInvalid,
         "unknown key \"typo\"");
  expect(R"({"method": "ngram", "num_speculative_tokens": 4, "disable_by_batch_size": -2})",
         kInvalid, "disable_by_batch_size");
  expect(R"({"method": "draft_model", "num_speculative_tokens": 4})", kInvalid, "needs \"model\"");
  expect(R"({"method": "ngram", "model": "d.gguf", "num_speculative_tokens": 4})", kInvalid,
         "\"method\" must be");
  expect(R"({"model": "", "num_speculative_tokens": 4})", kInvalid, "non-empty path");
  expect(R"({"model": 3, "num_speculative_tokens": 4})", kInvalid, "non-empty path");
  expect(R"({"model": "d.gguf", "num_speculative_tokens": 4, "prompt_lookup_max": 2})", kInvalid,
         "not a draft model");
  expect(R"({"model": "d.gguf", "num_speculative_tokens": 4, "prompt_lookup_agreement": true})",
         kInvalid, "not a draft model");
  expect(R"({"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_agreement": 1})",
         kInvalid, "\"prompt_lookup_agreement\" must be true or false, got 1");
  expect(R"({"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_history_tokens": 1.5})",
         kInvalid, "\"prompt_lookup_history_tokens\" must be an integer in [0, 2^28], got 1.5");
  expect(R"({"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_history_tokens": -1})",
         kInvalid, "[0, 2^28], got -1");
  expect(
      R"({"method": "ngram", "num_speculative_tokens": 4,
          "prompt_lookup_history_tokens": 18446744073709551615})",
      kInvalid, "[0, 2^28], got 18446744073709551615");
  expect(R"({"model": "d.gguf", "num_speculative_tokens": 4, "prompt_lookup_history_tokens": 8})",
         kInvalid, "\"prompt_lookup_history_tokens\" is for method \"ngram\", not a draft model");
}

TEST(SpeculativeConfig, ParsesADraftModelAndRoundTrips) {
  for (
      const char* text :
      {R"({"model": "models/draft.gguf", "num_speculative_tokens": 3})",
       R"({"method": "draft_model", "model": "models/draft.gguf", "num_speculative_tokens": 3})"}) {
    auto config = ParseSpeculativeConfig(text);
    ASSERT_TRUE(config.ok()) << config.status();
    EXPECT_EQ(config->method, SpeculativeMethod::kDraftModel);
    EXPECT_EQ(config->model, "models/draft.gguf");
    EXPECT_EQ(config->num_speculative_tokens, 3);
    auto again = ParseSpeculativeConfig(config->ToJson());
    ASSERT_TRUE(again.ok()) << again.status() << " " << config->ToJson();
    EXPECT_EQ(again->ToJson(), config->ToJson());
  }
}

TEST(SpeculativeConfig, EngineConfigRefusesMultiStepAndStaticBatching) {
  const ExecutorInfo info{
      .num_device_blocks = 64, .block_size = 16, .max_model_len = 512, .vocab_size = 100};
  EngineConfig config;
  config.speculative = {.method = SpeculativeMethod::kNgram, .num_speculative_tokens = 4};
  EXPECT_TRUE(config.Validate(info).ok()) << config.Validate(info);
  config.num_scheduler_steps = 4;
  EXPECT_THAT(std::string(config.Validate(info).message()), HasSubstr("--num-scheduler-steps 1"));
  config.num_scheduler_steps = 1;
  config.scheduler = SchedulerKind::kStatic;
  EXPECT_THAT(std::string(config.Validate(info).message()), HasSubstr("continuous scheduler"));
}

}  // namespace
}  // namespace pagoda
