#include "common/sampling_params.h"

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace pagoda {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

void ExpectInvalid(const absl::Status& status, const std::string& field) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(field));
}

TEST(SamplingParams, DefaultsMatchVllmAndValidate) {
  SamplingParams params;
  EXPECT_EQ(params.temperature, 1.0f);
  EXPECT_EQ(params.top_k, 0);
  EXPECT_EQ(params.top_p, 1.0f);
  EXPECT_EQ(params.min_p, 0.0f);
  EXPECT_EQ(params.repetition_penalty, 1.0f);
  EXPECT_EQ(params.presence_penalty, 0.0f);
  EXPECT_EQ(params.frequency_penalty, 0.0f);
  EXPECT_FALSE(params.seed.has_value());
  EXPECT_EQ(params.logprobs, -1);
  EXPECT_FALSE(params.greedy());
  EXPECT_TRUE(params.Validate().ok());
  params.temperature = 0.0f;
  EXPECT_TRUE(params.greedy());
  EXPECT_TRUE(params.Validate().ok());
}

TEST(SamplingParams, ValidateAcceptsTheBoundaries) {
  SamplingParams params;
  params.top_p = 1.0f;
  params.top_k = -1;
  params.min_p = 1.0f;
  params.presence_penalty = -2.0f;
  params.frequency_penalty = 2.0f;
  params.logprobs = SamplingParams::kMaxLogprobs;
  params.max_tokens = 1;
  params.min_tokens = 1;
  EXPECT_TRUE(params.Validate().ok()) << params.Validate();
  params.logprobs = 0;
  params.top_k = 1;
  EXPECT_TRUE(params.Validate().ok()) << params.Validate();
}

TEST(SamplingParams, ValidateRejectsEachOutOfRangeFieldByName) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  struct Case {
    std::string field;
    std::function<void(SamplingParams&)> set;
  };
  const Case cases[] = {
      {"temperature", [](SamplingParams& p) { p.temperature = -0.5f; }},
      {"temperature", [nan](SamplingParams& p) { p.temperature = nan; }},
      {"top_p", [](SamplingParams& p) { p.top_p = 0.0f; }},
      {"top_p", [](SamplingParams& p) { p.top_p = 1.5f; }},
      {"top_k", [](SamplingParams& p) { p.top_k = -2; }},
      {"min_p", [](SamplingParams& p) { p.min_p = -0.1f; }},
      {"min_p", [](SamplingParams& p) { p.min_p = 1.1f; }},
      {"repetition_penalty", [](SamplingParams& p) { p.repetition_penalty = 0.0f; }},
      {"presence_penalty", [](SamplingParams& p) { p.presence_penalty = 2.5f; }},
      {"frequency_penalty", [](SamplingParams& p) { p.frequency_penalty = -2.5f; }},
      {"frequency_penalty", [nan](SamplingParams& p) { p.frequency_penalty = nan; }},
      {"logprobs", [](SamplingParams& p) { p.logprobs = 21; }},
      {"logprobs", [](SamplingParams& p) { p.logprobs = -2; }},
      {"max_tokens", [](SamplingParams& p) { p.max_tokens = 0; }},
      {"min_tokens", [](SamplingParams& p) { p.min_tokens = 17; }},  // > max_tokens = 16
      {"min_tokens", [](SamplingParams& p) { p.min_tokens = -1; }},
      {"stop_token_ids",
       [](SamplingParams& p) {
         p.stop_token_ids = {2, -1};
       }},
      {"stop",
       [](SamplingParams& p) {
         p.stop = {"ok", ""};
       }},
      {"stop", [](SamplingParams& p) { p.stop = {std::string(257, 'x')}; }},
      {"stop", [](SamplingParams& p) { p.stop = {"\xC3"}; }},  // not UTF-8
      {"stop", [](SamplingParams& p) { p.stop.assign(17, "x"); }},
  };
  for (const Case& c : cases) {
    SamplingParams params;
    c.set(params);
    SCOPED_TRACE(c.field);
    ExpectInvalid(params.Validate(), c.field);
  }
}

TEST(SamplingParams, ValidateMessageStatesTheAllowedRange) {
  SamplingParams params;
  params.top_p = 2.0f;
  EXPECT_THAT(std::string(params.Validate().message()),
              AllOf(HasSubstr("top_p"), HasSubstr("(0, 1]"), HasSubstr("2")));
}

TEST(SamplingParams, FromJsonReadsEveryField) {
  const nlohmann::json json = nlohmann::json::parse(R"({
    "temperature": 0.7, "top_p": 0.9, "top_k": 40, "min_p": 0.05, "repetition_penalty": 1.1,
    "presence_penalty": 0.5, "frequency_penalty": -0.25, "seed": 1234, "logprobs": 5,
    "max_tokens": 128, "min_tokens": 4, "ignore_eos": true, "stop_token_ids": [2, 128009],
    "prompt": "unknown fields are the caller's business"})");
  absl::StatusOr<SamplingParams> params = SamplingParams::FromJson(json);
  ASSERT_TRUE(params.ok()) << params.status();
  EXPECT_FLOAT_EQ(params->temperature, 0.7f);
  EXPECT_FLOAT_EQ(params->top_p, 0.9f);
  EXPECT_EQ(params->top_k, 40);
  EXPECT_FLOAT_EQ(params->min_p, 0.05f);
  EXPECT_FLOAT_EQ(params->repetition_penalty, 1.1f);
  EXPECT_FLOAT_EQ(params->presence_penalty, 0.5f);
  EXPECT_FLOAT_EQ(params->frequency_penalty, -0.25f);
  EXPECT_EQ(params->seed, 1234u);
  EXPECT_EQ(params->logprobs, 5);
  EXPECT_EQ(params->max_tokens, 128);
  EXPECT_EQ(params->min_tokens, 4);
  EXPECT_TRUE(params->ignore_eos);
  EXPECT_THAT(params->stop_token_ids, ::testing::ElementsAre(2, 128009));
  EXPECT_TRUE(params->Validate().ok());
}

TEST(SamplingParams, StopStringFieldsDefaultAndAcceptTheBounds) {
  SamplingParams params;
  EXPECT_TRUE(params.stop.empty());
  EXPECT_FALSE(params.include_stop_str_in_output);
  EXPECT_TRUE(params.skip_special_tokens);
  params.stop.assign(SamplingParams::kMaxStopStrings,
                     std::string(SamplingParams::kMaxStopStringBytes, 'x'));
  params.stop[0] = "你好";
  EXPECT_TRUE(params.Validate().ok()) << params.Validate();
}

TEST(SamplingParams, FromJsonReadsStopAsAStringOrAList) {
  absl::StatusOr<SamplingParams> one = SamplingParams::FromJson(nlohmann::json::parse(
      R"({"stop": "\n\n", "include_stop_str_in_output": true, "skip_special_tokens": false})"));
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_THAT(one->stop, ::testing::ElementsAre("\n\n"));
  EXPECT_TRUE(one->include_stop_str_in_output);
  EXPECT_FALSE(one->skip_special_tokens);
  absl::StatusOr<SamplingParams> list =
      SamplingParams::FromJson(nlohmann::json::parse(R"({"stop": ["User:", "。"]})"));
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_THAT(list->stop, ::testing::ElementsAre("User:", "。"));
  absl::StatusOr<SamplingParams> none =
      SamplingParams::FromJson(nlohmann::json::parse(R"({"stop": null})"));
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE(none->stop.empty());
}

TEST(SamplingParams, FromJsonKeepsDefaultsForAbsentAndNullFields) {
  absl::StatusOr<SamplingParams> params =
      SamplingParams::FromJson(nlohmann::json::parse(R"({"seed": null, "logprobs": null,
                                                          "temperature": 0})"));
  ASSERT_TRUE(params.ok()) << params.status();
  EXPECT_FALSE(params->seed.has_value());
  EXPECT_EQ(params->logprobs, -1);
  EXPECT_TRUE(params->greedy());
  EXPECT_EQ(params->max_tokens, SamplingParams().max_tokens);
}

TEST(SamplingParams, FromJsonMapsNegativeSeedsOntoUint64) {
  absl::StatusOr<SamplingParams> params =
      SamplingParams::FromJson(nlohmann::json::parse(R"({"seed": -1})"));
  ASSERT_TRUE(params.ok()) << params.status();
  EXPECT_EQ(params->seed, std::numeric_limits<uint64_t>::max());
}

TEST(SamplingParams, FromJsonRejectsWrongTypesNamingTheField) {
  const std::pair<std::string, std::string> cases[] = {
      {"temperature", R"({"temperature": "hot"})"},
      {"top_p", R"({"top_p": [0.9]})"},
      {"top_k", R"({"top_k": 1.5})"},
      {"min_p", R"({"min_p": true})"},
      {"repetition_penalty", R"({"repetition_penalty": "1"})"},
      {"presence_penalty", R"({"presence_penalty": {}})"},
      {"frequency_penalty", R"({"frequency_penalty": false})"},
      {"seed", R"({"seed": 1.5})"},
      {"logprobs", R"({"logprobs": "5"})"},
      {"max_tokens", R"({"max_tokens": 10.0})"},
      {"max_tokens", R"({"max_tokens": 3000000000})"},
      {"min_tokens", R"({"min_tokens": "1"})"},
      {"ignore_eos", R"({"ignore_eos": 1})"},
      {"stop_token_ids", R"({"stop_token_ids": 2})"},
      {"stop_token_ids", R"({"stop_token_ids": [2, "x"]})"},
      {"stop_token_ids", R"({"stop_token_ids": [-3]})"},
      {"stop", R"({"stop": 5})"},
      {"stop", R"({"stop": ["a", 1]})"},
      {"include_stop_str_in_output", R"({"include_stop_str_in_output": "yes"})"},
      {"skip_special_tokens", R"({"skip_special_tokens": 0})"},
  };
  for (const auto& [field, text] : cases) {
    SCOPED_TRACE(text);
    ExpectInvalid(SamplingParams::FromJson(nlohmann::json::parse(text)).status(), field);
  }
}

TEST(SamplingParams, FromJsonRejectsANonObject) {
  ExpectInvalid(SamplingParams::FromJson(nlohmann::json::parse("[1, 2]")).status(), "object");
}

TEST(SamplingParams, ParallelSamplingAndBeamSearchFieldsValidate) {
  SamplingParams params;
  EXPECT_EQ(params.n, 1);
  EXPECT_EQ(params.beam_width, 0);
  EXPECT_FLOAT_EQ(params.length_penalty, 1.0f);
  EXPECT_FALSE(params.beam_search());
  params.n = 64;
  EXPECT_TRUE(params.Validate().ok());
  params.n = 0;
  ExpectInvalid(params.Validate(), "n must be in [1, 64]");
  params.n = 65;
  ExpectInvalid(params.Validate(), "n must be in [1, 64]");
  params.n = 4;
  params.beam_width = 4;
  params.temperature = 0.8f;  // ignored by beam search
  EXPECT_TRUE(params.beam_search());
  EXPECT_TRUE(params.Validate().ok());
  params.beam_width = 3;
  ExpectInvalid(params.Validate(), "n must be <= beam_width = 3");
  params.beam_width = 65;
  ExpectInvalid(params.Validate(), "beam_width");
  params.beam_width = 1;  // not beam search: n is free
  EXPECT_TRUE(params.Validate().ok());
  params.length_penalty = std::numeric_limits<float>::infinity();
  ExpectInvalid(params.Validate(), "length_penalty");
}

TEST(SamplingParams, ConstraintShapeIsValidatedAndRefusesBeamSearch) {
  using Kind = SamplingParams::ConstraintKind;
  SamplingParams params;
  EXPECT_FALSE(params.constrained());
  params.constraint = "x";  // text without a kind
  ExpectInvalid(params.Validate(), "constraint must be empty");
  params.constraint_kind = Kind::kJsonObject;
  ExpectInvalid(params.Validate(), "constraint must be empty");
  params.constraint.clear();
  EXPECT_TRUE(params.constrained());
  EXPECT_TRUE(params.Validate().ok());
  for (Kind kind : {Kind::kJsonSchema, Kind::kRegex, Kind::kChoice, Kind::kGrammar}) {
    params.constraint_kind = kind;
    params.constraint.clear();
    ExpectInvalid(params.Validate(), "constraint must be non-empty UTF-8");
    params.constraint = "\xff";
    ExpectInvalid(params.Validate(), "constraint must be non-empty UTF-8");
    params.constraint = std::string(SamplingParams::kMaxConstraintBytes + 1, 'a');
    ExpectInvalid(params.Validate(), "constraint must be non-empty UTF-8");
    params.constraint = "a";
    EXPECT_TRUE(params.Validate().ok());
  }
  params.ignore_eos = true;
  ExpectInvalid(params.Validate(), "constraint is not supported with ignore_eos or min_tokens");
  params.ignore_eos = false;
  params.min_tokens = 1;
  ExpectInvalid(params.Validate(), "constraint is not supported with ignore_eos or min_tokens");
  params.min_tokens = 0;
  params.beam_width = 2;
  ExpectInvalid(params.Validate(), "constraint is not supported with beam search");
}

TEST(SamplingParams, FromJsonReadsLogitBiasAndAllowedTokenIdsSorted) {
  const nlohmann::json json = nlohmann::json::parse(
      R"({"logit_bias": {"50": -100, "7": 2.5, "1000": 100},
          "allowed_token_ids": [9, 3, 9, 0]})");
  absl::StatusOr<SamplingParams> params = SamplingParams::FromJson(json);
  ASSERT_TRUE(params.ok()) << params.status();
  EXPECT_EQ(params->logit_bias,
            (std::vector<std::pair<int32_t, float>>{{7, 2.5f}, {50, -100.0f}, {1000, 100.0f}}));
  EXPECT_EQ(params->allowed_token_ids, (std::vector<int32_t>{0, 3, 9}));
  EXPECT_TRUE(params->Validate().ok()) << params->Validate();
}

TEST(SamplingParams, LogitBiasAndAllowedTokenIdsRefuseBadInputByName) {
  for (const char* bad :
       {R"({"logit_bias": [1]})", R"({"logit_bias": {"x": 1}})", R"({"logit_bias": {"-1": 1}})",
        R"({"logit_bias": {"+1": 1}})", R"({"logit_bias": {"": 1}})",
        R"({"logit_bias": {"7": "1"}})", R"({"logit_bias": {"7": 1, "07": 2}})",
        R"({"logit_bias": {"99999999999": 1}})"}) {
    ExpectInvalid(SamplingParams::FromJson(nlohmann::json::parse(bad)).status(), "logit_bias");
  }
  for (const char* bad :
       {R"({"allowed_token_ids": []})", R"({"allowed_token_ids": 3})",
        R"({"allowed_token_ids": [-1]})", R"({"allowed_token_ids": [1.5]})",
        R"({"allowed_token_ids": ["1"]})", R"({"allowed_token_ids": [4294967296]})"}) {
    ExpectInvalid(SamplingParams::FromJson(nlohmann::json::parse(bad)).status(),
                  "allowed_token_ids");
  }
  SamplingParams params;
  params.logit_bias = {{3, 100.5f}};
  ExpectInvalid(params.Validate(), "logit_bias");
  params.logit_bias = {{3, std::numeric_limits<float>::quiet_NaN()}};
  ExpectInvalid(params.Validate(), "logit_bias");
  params.logit_bias = {{3, 1.0f}, {3, 2.0f}};  // not one entry per id (a decoded message)
  ExpectInvalid(params.Validate(), "logit_bias");
  params.logit_bias = {{3, -100.0f}, {4, 100.0f}};
  EXPECT_TRUE(params.Validate().ok());
  params.logit_bias.assign(SamplingParams::kMaxLogitBias + 1, {0, 0.0f});
  ExpectInvalid(params.Validate(), "logit_bias");
  params.logit_bias.clear();
  params.allowed_token_ids = {5, 2};
  ExpectInvalid(params.Validate(), "allowed_token_ids");
  params.allowed_token_ids = {2, 5};
  EXPECT_TRUE(params.Validate().ok());
  params.beam_width = 2;  // beam search ranks raw logprobs: no allow list or bias there
  ExpectInvalid(params.Validate(), "allowed_token_ids");
  params.allowed_token_ids.clear();
  params.logit_bias = {{1, 1.0f}};
  ExpectInvalid(params.Validate(), "logit_bias");
}

TEST(SamplingParams, FromJsonReadsBadWordsInOrder) {
  auto params =
      SamplingParams::FromJson(nlohmann::json::parse(R"({"bad_words": ["hot dog", " cat", "é"]})"));
  ASSERT_TRUE(params.ok()) << params.status();
  EXPECT_EQ(params->bad_words, (std::vector<std::string>{"hot dog", " cat", "é"}));
  EXPECT_TRUE(params->bad_words_token_ids.empty());  // the router's tokenizer fills them
  EXPECT_TRUE(params->Validate().ok()) << params->Validate();
  // Absent, null and [] mean none; a JSON key for the token ids is not read from a body.
  for (const char* none :
       {R"({})", R"({"bad_words": null})", R"({"bad_words": [], "bad_words_token_ids": [[1]]})"}) {
    params = SamplingParams::FromJson(nlohmann::json::parse(none));
    ASSERT_TRUE(params.ok()) << params.status();
    EXPECT_TRUE(params->bad_words.empty() && params->bad_words_token_ids.empty()) << none;
  }
}

TEST(SamplingParams, BadWordsRefuseBadInputByName) {
  for (const char* bad :
       {R"({"bad_words": "dog"})", R"({"bad_words": [1]})", R"({"bad_words": ["dog", null]})",
        R"({"bad_words": [["dog"]]})", R"({"bad_words": [""]})", R"({"bad_words": {"dog": 1}})"}) {
    ExpectInvalid(SamplingParams::FromJson(nlohmann::json::parse(bad)).status(), "bad_words");
  }
  nlohmann::json many = {
      {"bad_words", std::vector<std::string>(SamplingParams::kMaxBadWords + 1, "dog")}};
  ExpectInvalid(SamplingParams::FromJson(many).status(), "bad_words");

  SamplingParams params;
  params.bad_words.assign(SamplingParams::kMaxBadWords, "dog");
  EXPECT_TRUE(params.Validate().ok()) << params.Validate();
  params.bad_words.push_back("dog");
  ExpectInvalid(params.Validate(), "bad_words");
  for (const std::string& word :
       {std::string(), std::string(" \t\n"), std::string(SamplingParams::kMaxBadWordBytes + 1, 'a'),
        std::string("\xff")}) {
    params.bad_words = {word};
    ExpectInvalid(params.Validate(), "bad_words");
  }
  params.bad_words = {std::string(SamplingParams::kMaxBadWordBytes, 'a')};
  EXPECT_TRUE(params.Validate().ok()) << params.Validate();

  // The token id sequences come off the wire on a worker: each non-empty, ids >= 0, bounded.
  params.bad_words_token_ids = {{5}, {7, 9}};
  EXPECT_TRUE(params.Validate().ok()) << params.Validate();
  params.bad_words_token_ids = {{5}, {}};
  ExpectInvalid(params.Validate(), "bad_words");
  params.bad_words_token_ids = {{5, -1}};
  ExpectInvalid(params.Validate(), "bad_words");
  params.bad_words_token_ids.assign(2 * SamplingParams::kMaxBadWords + 1, {1});
  ExpectInvalid(params.Validate(), "bad_words");
  params.bad_words_token_ids = {std::vector<int32_t>(SamplingParams::kMaxBadWordsTokenIds + 1, 1)};
  ExpectInvalid(params.Validate(), "bad_words");

  // Beam search ranks every continuation as the model scores it: no bans there.
  params.bad_words_token_ids = {{5}};
  params.beam_width = 2;
  ExpectInvalid(params.Validate(), "bad_words");
  params.bad_words.clear();
  ExpectInvalid(params.Validate(), "bad_words");
  params.bad_words_token_ids.clear();
  EXPECT_TRUE(params.Validate().ok()) << params.Validate();
}

TEST(SamplingParams, FromJsonReadsBeamSearchInBothSpellings) {
  auto params = SamplingParams::FromJson(
      nlohmann::json::parse(R"({"n": 2, "beam_width": 4, "length_penalty": 0.5})"));
  ASSERT_TRUE(params.ok()) << params.status();
  EXPECT_EQ(params->n, 2);
  EXPECT_EQ(params->beam_width, 4);
  EXPECT_FLOAT_EQ(params->length_penalty, 0.5f);
  // vLLM V0: use_beam_search with best_of beams, best_of defaulting to n.
  params = SamplingParams::FromJson(
      nlohmann::json::parse(R"({"n": 2, "best_of": 6, "use_beam_search": true})"));
  ASSERT_TRUE(params.ok()) << params.status();
  EXPECT_EQ(params->beam_width, 6);
  params = SamplingParams::FromJson(nlohmann::json::parse(R"({"n": 3, "use_beam_search": true})"));
  ASSERT_TRUE(params.ok()) << params.status();
  EXPECT_EQ(params->beam_width, 3);
  // best_of without beam search is not beam search.
  params = SamplingParams::FromJson(nlohmann::json::parse(R"({"best_of": 6})"));
  ASSERT_TRUE(params.ok()) << params.status();
  EXPECT_EQ(params->beam_width, 0);
  ExpectInvalid(SamplingParams::FromJson(nlohmann::json::parse(R"({"n": "2"})")).status(), "n");
}

}  // namespace
}  // namespace pagoda
