#include "proto/step_codec.h"

#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/stubs/logging.h"
#include "gtest/gtest.h"

namespace pagoda {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

// Each round trip goes through the bytes, as on the wire.
template <typename Message>
Message ThroughWire(const Message& message) {
  Message parsed;
  EXPECT_TRUE(parsed.ParseFromString(message.SerializeAsString()));
  return parsed;
}

void ExpectInvalid(const absl::Status& status, const std::vector<std::string>& substrings) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  for (const std::string& s : substrings) {
    EXPECT_THAT(std::string(status.message()), HasSubstr(s));
  }
}

void ExpectSameParams(const SamplingParams& a, const SamplingParams& b) {
  EXPECT_EQ(a.temperature, b.temperature);
  EXPECT_EQ(a.top_k, b.top_k);
  EXPECT_EQ(a.top_p, b.top_p);
  EXPECT_EQ(a.min_p, b.min_p);
  EXPECT_EQ(a.repetition_penalty, b.repetition_penalty);
  EXPECT_EQ(a.presence_penalty, b.presence_penalty);
  EXPECT_EQ(a.frequency_penalty, b.frequency_penalty);
  EXPECT_EQ(a.seed, b.seed);
  EXPECT_EQ(a.logprobs, b.logprobs);
  EXPECT_EQ(a.max_tokens, b.max_tokens);
  EXPECT_EQ(a.min_tokens, b.min_tokens);
  EXPECT_EQ(a.ignore_eos, b.ignore_eos);
  EXPECT_EQ(a.stop_token_ids, b.stop_token_ids);
  EXPECT_EQ(a.stop, b.stop);
  EXPECT_EQ(a.include_stop_str_in_output, b.include_stop_str_in_output);
  EXPECT_EQ(a.skip_special_tokens, b.skip_special_tokens);
  EXPECT_EQ(a.disable_speculative_decoding, b.disable_speculative_decoding);
  EXPECT_EQ(a.n, b.n);
  EXPECT_EQ(a.beam_width, b.beam_width);
  EXPECT_EQ(a.length_penalty, b.length_penalty);
  EXPECT_EQ(a.constraint_kind, b.constraint_kind);
  EXPECT_EQ(a.constraint, b.constraint);
  EXPECT_EQ(a.logit_bias, b.logit_bias);
  EXPECT_EQ(a.allowed_token_ids, b.allowed_token_ids);
  EXPECT_EQ(a.bad_words, b.bad_words);
  EXPECT_EQ(a.bad_words_token_ids, b.bad_words_token_ids);
}

void ExpectSamePlan(const StepPlan& a, const StepPlan& b) {
  EXPECT_EQ(a.step_id, b.step_id);
  ASSERT_EQ(a.new_sequences.size(), b.new_sequences.size());
  for (size_t i = 0; i < a.new_sequences.size(); ++i) {
    const NewSequence& x = a.new_sequences[i];
    const NewSequence& y = b.new_sequences[i];
    EXPECT_EQ(x.seq_id, y.seq_id);
    EXPECT_EQ(x.token_ids, y.token_ids);
    EXPECT_EQ(x.num_prompt_tokens, y.num_prompt_tokens);
    EXPECT_EQ(x.num_computed_tokens, y.num_computed_tokens);
    EXPECT_EQ(x.num_scheduled_tokens, y.num_scheduled_tokens);
    EXPECT_EQ(x.block_ids, y.block_ids);
    ExpectSameParams(x.sampling_params, y.sampling_params);
    EXPECT_EQ(x.seed, y.seed);
    EXPECT_EQ(x.more_block_ids, y.more_block_ids);
  }
  ASSERT_EQ(a.cached_sequences.size(), b.cached_sequences.size());
  for (size_t i = 0; i < a.cached_sequences.size(); ++i) {
    const CachedSequence& x = a.cached_sequences[i];
    const CachedSequence& y = b.cached_sequences[i];
    EXPECT_EQ(x.seq_id, y.seq_id);
    EXPECT_EQ(x.replaced_block_ids, y.replaced_block_ids);
    EXPECT_EQ(x.new_block_ids, y.new_block_ids);
    EXPECT_EQ(x.num_scheduled_tokens, y.num_scheduled_tokens);
    EXPECT_EQ(x.replace_last_token_ids, y.replace_last_token_ids);
    EXPECT_EQ(x.draft_token_ids, y.draft_token_ids);
    EXPECT_EQ(x.num_worker_draft_tokens, y.num_worker_draft_tokens);
    EXPECT_EQ(x.draft_guard_token_id, y.draft_guard_token_id);
    ASSERT_EQ(x.more_groups.size(), y.more_groups.size());
    for (size_t g = 0; g < x.more_groups.size(); ++g) {
      EXPECT_EQ(x.more_groups[g].replaced_block_ids, y.more_groups[g].replaced_block_ids);
      EXPECT_EQ(x.more_groups[g].new_block_ids, y.more_groups[g].new_block_ids);
    }
  }
  EXPECT_EQ(a.finished_seq_ids, b.finished_seq_ids);
  EXPECT_EQ(a.swap_out, b.swap_out);
  EXPECT_EQ(a.swap_in, b.swap_in);
  EXPECT_EQ(a.block_copies, b.block_copies);
  EXPECT_EQ(a.num_steps, b.num_steps);
}

void ExpectSameResult(const StepResult& a, const StepResult& b) {
  EXPECT_EQ(a.step_id, b.step_id);
  ASSERT_EQ(a.outputs.size(), b.outputs.size());
  for (size_t i = 0; i < a.outputs.size(); ++i) {
    EXPECT_EQ(a.outputs[i].seq_id, b.outputs[i].seq_id);
    EXPECT_EQ(a.outputs[i].token_ids, b.outputs[i].token_ids);
    EXPECT_EQ(a.outputs[i].logprobs, b.outputs[i].logprobs);
    EXPECT_EQ(a.outputs[i].top_logprobs, b.outputs[i].top_logprobs);
  }
}

// Every field differs from its default.
SamplingParams PopulatedParams() {
  SamplingParams params;
  params.temperature = 0.7f;
  params.top_k = 40;
  params.top_p = 0.9f;
  params.min_p = 0.05f;
  params.repetition_penalty = 1.1f;
  params.presence_penalty = -0.5f;
  params.frequency_penalty = 0.25f;
  params.seed = std::numeric_limits<uint64_t>::max();  // past int64: no sign is lost
  params.logprobs = 5;
  params.max_tokens = 200;
  params.min_tokens = 3;
  params.ignore_eos = true;
  params.stop_token_ids = {2, 32000};
  params.stop = {"\n\n", "END", "é"};
  params.include_stop_str_in_output = true;
  params.skip_special_tokens = false;
  params.disable_speculative_decoding = true;
  params.n = 3;
  params.beam_width = 4;
  params.length_penalty = 0.8f;
  params.logit_bias = {{0, -100.0f}, {13, 2.5f}, {32000, 100.0f}};
  params.allowed_token_ids = {1, 2, 40000};
  params.bad_words = {"hot dog", "é"};
  params.bad_words_token_ids = {{12, 11}, {13, 11}, {40001}};
  return params;
}

StepPlan PopulatedPlan() {
  StepPlan plan;
  plan.step_id = (int64_t{1} << 40) + 7;
  plan.new_sequences.push_back({.seq_id = "cmpl-0123456789abcdef#0",
                                .token_ids = {1, 15043, 29892, 3186, 29991},
                                .num_prompt_tokens = 4,
                                .num_computed_tokens = 2,
                                .num_scheduled_tokens = 3,
                                .block_ids = {7, 0, 123456},
                                .more_block_ids = {{kFreedBlockId, 8, 9}, {10, 11, 12}},
                                .sampling_params = PopulatedParams(),
                                .seed = 0xFEDCBA9876543210ull});
  plan.new_sequences.push_back({.seq_id = "cmpl-1#1",
                                .token_ids = {1, 2},
                                .num_prompt_tokens = 2,
                                .num_scheduled_tokens = 2,
                                .block_ids = {9},
                                .seed = 42});
  plan.cached_sequences.push_back(
      {.seq_id = "cmpl-2#0",
       .replaced_block_ids = {{0, 17}, {3, 18}},
       .new_block_ids = {19, 20},
       .more_groups = {{.replaced_block_ids = {{1, 21}}, .new_block_ids = {22, 23}},
                       {.new_block_ids = {24, 25}}},
       .num_scheduled_tokens = 1,
       .replace_last_token_ids = {450, 451}});
  plan.cached_sequences.push_back({.seq_id = "cmpl-3#0",
                                   .num_scheduled_tokens = 3,
                                   .draft_token_ids = {77, 78},
                                   .draft_guard_token_id = 76});
  plan.cached_sequences.push_back(
      {.seq_id = "cmpl-6#0", .num_scheduled_tokens = 5, .num_worker_draft_tokens = 4});
  plan.finished_seq_ids = {"cmpl-4#0", "cmpl-5#2"};
  plan.swap_out = {{1, 2}, {3, 4}};
  plan.swap_in = {{5, 6}};
  plan.block_copies = {{7, 8}, {9, 10}, {11, 12}};
  plan.num_steps = 4;
  return plan;
}

StepResult PopulatedResult() {
  StepResult result;
  result.step_id = 99;
  result.outputs.push_back({.seq_id = "cmpl-2#0",
                            .token_ids = {450, 29871},
                            .logprobs = {-0.25f, -1.5f},
                            .top_logprobs = {{{450, -0.25f}, {300, -2.0f}}, {{29871, -1.5f}}}});
  result.outputs.push_back({.seq_id = "cmpl-3#0", .token_ids = {13}});
  // logprobs = 0: the sampled token's logprob and no alternatives.
  result.outputs.push_back({.seq_id = "cmpl-6#0",
                            .token_ids = {5, 6},
                            .logprobs = {-0.1f, -0.2f},
                            .top_logprobs = {{}, {}}});
  return result;
}

absl::StatusOr<StepPlan> DecodeMutated(void (*mutate)(internal::StepPlan&)) {
  internal::StepPlan proto;
  EncodeStepPlan(PopulatedPlan(), &proto);
  mutate(proto);
  return DecodeStepPlan(ThroughWire(proto));
}

absl::StatusOr<StepResult> DecodeMutated(void (*mutate)(internal::StepResult&)) {
  internal::StepResult proto;
  EncodeStepResult(PopulatedResult(), &proto);
  mutate(proto);
  return DecodeStepResult(ThroughWire(proto));
}

TEST(StepCodec, SamplingParamsRoundTripEveryField) {
  const SamplingParams params = PopulatedParams();
  v1::SamplingParams proto;
  EncodeSamplingParams(params, &proto);
  absl::StatusOr<SamplingParams> decoded = DecodeSamplingParams(ThroughWire(proto));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ExpectSameParams(*decoded, params);
}

// A client's message: the map in any order, the list unsorted with a repeat.
TEST(StepCodec, LogitBiasAndAllowedTokenIdsDecodeSorted) {
  v1::SamplingParams proto;
  (*proto.mutable_logit_bias())[900] = -1.0f;
  (*proto.mutable_logit_bias())[4] = 3.0f;
  for (int32_t id : {7, 2, 7, 0}) proto.add_allowed_token_ids(id);
  absl::StatusOr<SamplingParams> decoded = DecodeSamplingParams(ThroughWire(proto));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->logit_bias, (std::vector<std::pair<int32_t, float>>{{4, 3.0f}, {900, -1.0f}}));
  EXPECT_EQ(decoded->allowed_token_ids, (std::vector<int32_t>{0, 2, 7}));
  EXPECT_TRUE(decoded->Validate().ok()) << decoded->Validate();
}

// bad_words off the wire: the sizes are bounded before anything is copied; the rest (empty
// sequences, negative ids) is SamplingParams::Validate()'s, which the worker runs on every new
// sequence.
TEST(StepCodec, BadWordsFromHostileMessagesAreBoundedOrFailValidate) {
  const auto decode = [](const v1::SamplingParams& proto) {
    return DecodeSamplingParams(ThroughWire(proto));
  };
  v1::SamplingParams proto;
  for (size_t i = 0; i <= SamplingParams::kMaxBadWords; ++i) proto.add_bad_words("dog");
  absl::StatusOr<SamplingParams> decoded = decode(proto);
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(decoded.status().message()), HasSubstr("bad_words"));

  proto.Clear();
  for (size_t i = 0; i <= 2 * SamplingParams::kMaxBadWords; ++i) {
    proto.add_bad_words_token_ids()->add_ids(1);
  }
  decoded = decode(proto);
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(decoded.status().message()), HasSubstr("bad_words_token_ids"));

  proto.Clear();
  v1::TokenIds* long_word = proto.add_bad_words_token_ids();
  for (size_t i = 0; i <= SamplingParams::kMaxBadWordsTokenIds; ++i) long_word->add_ids(1);
  decoded = decode(proto);
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(decoded.status().message()), HasSubstr("bad_words_token_ids"));

  for (const std::vector<int32_t>& bad : {std::vector<int32_t>{}, std::vector<int32_t>{3, -4}}) {
    proto.Clear();
    proto.add_bad_words_token_ids()->add_ids(7);
    proto.add_bad_words_token_ids()->mutable_ids()->Add(bad.begin(), bad.end());
    decoded = decode(proto);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(decoded->bad_words_token_ids.size(), 2u);
    EXPECT_EQ(decoded->Validate().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(decoded->Validate().message()), HasSubstr("bad_words"));
  }
  proto.Clear();
  proto.add_bad_words("");  // an empty word: Validate() refuses it
  decoded = decode(proto);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->Validate().code(), absl::StatusCode::kInvalidArgument);
}

TEST(StepCodec, SamplingParamsRoundTripEveryConstraintKind) {
  using Kind = SamplingParams::ConstraintKind;
  for (auto [kind, text] : std::vector<std::pair<Kind, std::string>>{
           {Kind::kNone, ""},
           {Kind::kJsonSchema, R"({"type": "object", "properties": {"a": {"type": "integer"}}})"},
           {Kind::kJsonObject, ""},
           {Kind::kRegex, "[a-z]+@é\\.com"},
           {Kind::kChoice, R"(["yes", "no"])"},
           {Kind::kGrammar, "root ::= \"a\" | \"b\""}}) {
    SamplingParams params;
    params.constraint_kind = kind;
    params.constraint = text;
    v1::SamplingParams proto;
    EncodeSamplingParams(params, &proto);
    EXPECT_EQ(proto.has_structured_output(), kind != Kind::kNone);
    absl::StatusOr<SamplingParams> decoded = DecodeSamplingParams(ThroughWire(proto));
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    ExpectSameParams(*decoded, params);
  }
}

TEST(StepCodec, UnknownConstraintKindIsInvalid) {
  v1::SamplingParams proto;
  proto.mutable_structured_output()->set_kind(static_cast<v1::StructuredOutput::Kind>(42));
  proto.mutable_structured_output()->set_text("x");
  ExpectInvalid(DecodeSamplingParams(proto).status(), {"structured_output", "42"});
}

TEST(StepCodec, EncodeSetsEveryOptionalFieldEvenAtItsDefault) {
  v1::SamplingParams proto;
  EncodeSamplingParams(SamplingParams{}, &proto);
  EXPECT_TRUE(proto.has_temperature());
  EXPECT_TRUE(proto.has_top_k());
  EXPECT_TRUE(proto.has_top_p());
  EXPECT_TRUE(proto.has_min_p());
  EXPECT_TRUE(proto.has_repetition_penalty());
  EXPECT_TRUE(proto.has_presence_penalty());
  EXPECT_TRUE(proto.has_frequency_penalty());
  EXPECT_TRUE(proto.has_logprobs());
  EXPECT_TRUE(proto.has_max_tokens());
  EXPECT_TRUE(proto.has_min_tokens());
  EXPECT_TRUE(proto.has_skip_special_tokens());
  EXPECT_TRUE(proto.has_n());
  EXPECT_TRUE(proto.has_beam_width());
  EXPECT_TRUE(proto.has_length_penalty());
  EXPECT_EQ(proto.logprobs(), -1);
  EXPECT_EQ(proto.max_tokens(), 16);
  EXPECT_TRUE(proto.skip_special_tokens());
  // An unset seed stays unset: the engine draws one.
  EXPECT_FALSE(proto.has_seed());
}

TEST(StepCodec, AbsentSamplingFieldsTakeTheDefaults) {
  absl::StatusOr<SamplingParams> decoded = DecodeSamplingParams(v1::SamplingParams{});
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ExpectSameParams(*decoded, SamplingParams{});
  EXPECT_FALSE(decoded->seed.has_value());
}

TEST(StepCodec, ExplicitZeroIsToldApartFromAbsent) {
  v1::SamplingParams proto;
  proto.set_temperature(0.0f);
  proto.set_seed(0);
  proto.set_skip_special_tokens(false);
  proto.set_logprobs(0);
  absl::StatusOr<SamplingParams> decoded = DecodeSamplingParams(ThroughWire(proto));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->temperature, 0.0f);
  EXPECT_EQ(decoded->seed, std::optional<uint64_t>(0));
  EXPECT_FALSE(decoded->skip_special_tokens);
  EXPECT_EQ(decoded->logprobs, 0);
  EXPECT_EQ(decoded->top_p, 1.0f);
  EXPECT_EQ(decoded->max_tokens, 16);
  EXPECT_EQ(decoded->n, 1);
}

TEST(StepCodec, StepPlanRoundTripEveryField) {
  const StepPlan plan = PopulatedPlan();
  internal::StepPlan proto;
  EncodeStepPlan(plan, &proto);
  EXPECT_EQ(proto.swap_out_size(), 4);  // flattened pairs
  EXPECT_EQ(proto.cached_sequences(0).replaced_block_ids_size(), 4);
  absl::StatusOr<StepPlan> decoded = DecodeStepPlan(ThroughWire(proto));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ExpectSamePlan(*decoded, plan);
}

TEST(StepCodec, StepResultRoundTripWithAndWithoutLogprobs) {
  const StepResult result = PopulatedResult();
  internal::StepResult proto;
  EncodeStepResult(result, &proto);
  absl::StatusOr<StepResult> decoded = DecodeStepResult(ThroughWire(proto));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ExpectSameResult(*decoded, result);
}

TEST(StepCodec, EmptyMessagesDecodeToDefaults) {
  internal::StepPlan plan_proto;
  plan_proto.set_num_steps(1);                      // the one field a plan must carry
  plan_proto.add_new_sequences()->set_seq_id("a");  // no sampling_params message at all
  plan_proto.add_cached_sequences()->set_seq_id("b");
  absl::StatusOr<StepPlan> plan = DecodeStepPlan(ThroughWire(plan_proto));
  ASSERT_TRUE(plan.ok()) << plan.status();
  ExpectSamePlan(
      *plan, StepPlan{.new_sequences = {{.seq_id = "a"}}, .cached_sequences = {{.seq_id = "b"}}});

  absl::StatusOr<StepResult> result = DecodeStepResult(internal::StepResult{});
  ASSERT_TRUE(result.ok()) << result.status();
  ExpectSameResult(*result, StepResult{});
}

TEST(StepCodec, EncodeReplacesWhatTheMessageHeld) {
  internal::StepPlan plan_proto;
  EncodeStepPlan(PopulatedPlan(), &plan_proto);
  const StepPlan small = {.step_id = 3,
                          .cached_sequences = {{.seq_id = "x", .num_scheduled_tokens = 1}}};
  EncodeStepPlan(small, &plan_proto);
  absl::StatusOr<StepPlan> plan = DecodeStepPlan(plan_proto);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ExpectSamePlan(*plan, small);

  internal::StepResult result_proto;
  EncodeStepResult(PopulatedResult(), &result_proto);
  EncodeStepResult(StepResult{.step_id = 4}, &result_proto);
  EXPECT_EQ(result_proto.outputs_size(), 0);

  v1::SamplingParams params_proto;
  EncodeSamplingParams(PopulatedParams(), &params_proto);
  EncodeSamplingParams(SamplingParams{}, &params_proto);
  EXPECT_FALSE(params_proto.has_seed());
  EXPECT_EQ(params_proto.stop_size(), 0);
}

TEST(StepCodec, RejectsNumStepsBelowOne) {
  ExpectInvalid(DecodeMutated([](internal::StepPlan& p) { p.set_num_steps(0); }).status(),
                {"step plan 1099511627783", "num_steps", "got 0"});
  ExpectInvalid(DecodeMutated([](internal::StepPlan& p) { p.set_num_steps(-3); }).status(),
                {"num_steps", "got -3"});
}

TEST(StepCodec, RejectsOddLengthPairArrays) {
  ExpectInvalid(DecodeMutated([](internal::StepPlan& p) { p.add_swap_out(5); }).status(),
                {"step plan", "swap_out", "got 5 ints"});
  ExpectInvalid(DecodeMutated([](internal::StepPlan& p) { p.add_swap_in(5); }).status(),
                {"swap_in", "got 3 ints"});
  ExpectInvalid(DecodeMutated([](internal::StepPlan& p) { p.add_block_copies(5); }).status(),
                {"block_copies", "got 7 ints"});
  ExpectInvalid(DecodeMutated([](internal::StepPlan& p) {
                  p.mutable_cached_sequences(0)->add_replaced_block_ids(5);
                }).status(),
                {"cached sequence \"cmpl-2#0\"", "replaced_block_ids", "got 5 ints"});
  ExpectInvalid(DecodeMutated([](internal::StepPlan& p) {
                  p.mutable_cached_sequences(0)->mutable_more_groups(0)->add_replaced_block_ids(5);
                }).status(),
                {"cached sequence \"cmpl-2#0\"", "more_groups.replaced_block_ids", "got 3 ints"});
}

TEST(StepCodec, RejectsNegativeCounts) {
  ExpectInvalid(DecodeMutated([](internal::StepPlan& p) {
                  p.mutable_new_sequences(1)->set_num_prompt_tokens(-1);
                }).status(),
                {"new sequence \"cmpl-1#1\"", "num_prompt_tokens", ">= 0", "-1"});
  ExpectInvalid(DecodeMutated([](internal::StepPlan& p) {
                  p.mutable_new_sequences(0)->set_num_computed_tokens(-2);
                }).status(),
                {"new sequence \"cmpl-0123456789abcdef#0\"", "num_computed_tokens", "-2"});
  ExpectInvalid(DecodeMutated([](internal::StepPlan& p) {
                  p.mutable_new_sequences(0)->set_num_scheduled_tokens(-3);
                }).status(),
                {"new sequence \"cmpl-0123456789abcdef#0\"", "num_scheduled_tokens", "-3"});
  ExpectInvalid(DecodeMutated([](internal::StepPlan& p) {
                  p.mutable_cached_sequences(1)->set_num_scheduled_tokens(-1);
                }).status(),
                {"cached sequence \"cmpl-3#0\"", "num_scheduled_tokens", "-1"});
  ExpectInvalid(DecodeMutated([](internal::StepPlan& p) {
                  p.mutable_cached_sequences(2)->set_num_worker_draft_tokens(-4);
                }).status(),
                {"cached sequence \"cmpl-6#0\"", "num_worker_draft_tokens", "-4"});
  ExpectInvalid(DecodeMutated([](internal::StepPlan& p) {
                  p.mutable_cached_sequences(1)->set_draft_guard_token_id(-2);
                }).status(),
                {"cached sequence \"cmpl-3#0\"", "draft_guard_token_id", "-2"});
}

TEST(StepCodec, RejectsCountsPastANewSequencesTokens) {
  // Counts near INT64_MAX would overflow the sums a worker checks them with.
  constexpr int64_t kHuge = std::numeric_limits<int64_t>::max();
  ExpectInvalid(DecodeMutated([](internal::StepPlan& p) {
                  p.mutable_new_sequences(1)->set_num_prompt_tokens(3);
                }).status(),
                {"new sequence \"cmpl-1#1\"", "num_prompt_tokens 3", "2 token ids"});
  ExpectInvalid(DecodeMutated([](internal::StepPlan& p) {
                  p.mutable_new_sequences(1)->set_num_computed_tokens(kHuge);
                }).status(),
                {"num_computed_tokens"});
  ExpectInvalid(DecodeMutated([](internal::StepPlan& p) {
                  p.mutable_new_sequences(1)->set_num_scheduled_tokens(kHuge);
                }).status(),
                {"num_scheduled_tokens"});
}

TEST(StepCodec, RejectsLogprobsOfAnotherLengthThanTheTokens) {
  ExpectInvalid(DecodeMutated([](internal::StepResult& r) {
                  r.mutable_outputs(0)->add_logprobs(-3.0f);
                }).status(),
                {"step result 99", "output of sequence \"cmpl-2#0\"", "logprobs has 3 entries",
                 "2 token ids"});
  ExpectInvalid(DecodeMutated([](internal::StepResult& r) {
                  r.mutable_outputs(1)->add_logprobs(-3.0f);
                  r.mutable_outputs(1)->add_logprobs(-4.0f);
                }).status(),
                {"output of sequence \"cmpl-3#0\"", "logprobs has 2 entries", "1 token ids"});
  ExpectInvalid(DecodeMutated([](internal::StepResult& r) {
                  r.mutable_outputs(0)->add_top_logprobs();
                }).status(),
                {"output of sequence \"cmpl-2#0\"", "top_logprobs has 3 entries"});
}

TEST(StepCodec, RejectsTopLogprobsWithMismatchedTokensAndLogprobs) {
  ExpectInvalid(
      DecodeMutated([](internal::StepResult& r) {
        r.mutable_outputs(0)->mutable_top_logprobs(1)->add_token_ids(7);
      }).status(),
      {"output of sequence \"cmpl-2#0\"", "top_logprobs[1]", "2 token ids", "1 logprobs"});
  ExpectInvalid(
      DecodeMutated([](internal::StepResult& r) {
        r.mutable_outputs(2)->mutable_top_logprobs(0)->add_logprobs(-1.0f);
      }).status(),
      {"output of sequence \"cmpl-6#0\"", "top_logprobs[0]", "0 token ids", "1 logprobs"});
}

TEST(StepCodec, ErrorsShortenHostileIds) {
  internal::CachedSequence proto;
  proto.set_seq_id(std::string(100000, 'x'));
  proto.set_num_scheduled_tokens(-1);
  const absl::Status status = DecodeCachedSequence(proto).status();
  ExpectInvalid(status, {"cached sequence", "(100000 bytes)", "num_scheduled_tokens"});
  EXPECT_LT(status.message().size(), 200u);
}

TEST(StepCodec, DecodeSurvivesCorruptedMessages) {
  // Whatever still parses after flipping a few bytes must decode to a value or a clean error.
  google::protobuf::LogSilencer silence_invalid_utf8_reports;
  internal::StepPlan plan_proto;
  EncodeStepPlan(PopulatedPlan(), &plan_proto);
  internal::StepResult result_proto;
  EncodeStepResult(PopulatedResult(), &result_proto);
  const std::string plan_bytes = plan_proto.SerializeAsString();
  const std::string result_bytes = result_proto.SerializeAsString();
  uint64_t state = 12345;
  auto next = [&state] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return state >> 33;
  };
  auto corrupt = [&next](std::string bytes) {
    for (int k = 0, n = 1 + static_cast<int>(next() % 3); k < n; ++k) {
      bytes[next() % bytes.size()] = static_cast<char>(next());
    }
    return bytes;
  };
  int num_parsed = 0;
  int num_rejected = 0;
  for (int i = 0; i < 5000; ++i) {
    internal::StepPlan plan;
    if (plan.ParseFromString(corrupt(plan_bytes))) {
      ++num_parsed;
      num_rejected += DecodeStepPlan(plan).ok() ? 0 : 1;
    }
    internal::StepResult result;
    if (result.ParseFromString(corrupt(result_bytes))) {
      ++num_parsed;
      num_rejected += DecodeStepResult(result).ok() ? 0 : 1;
    }
  }
  EXPECT_GT(num_parsed, 1000);  // the loop did reach the decoders
  EXPECT_GT(num_rejected, 0);
}

// A running sequence's decode step carries its delta, not its context: vLLM V1's
// "cached request" encoding, which keeps a decode step O(batch) on the wire.
TEST(StepCodec, DecodeStepEntryDoesNotGrowWithContextLength) {
  constexpr int32_t kBlockSize = 16;
  auto decode_plan = [&](int32_t context_len) {
    // The prefill that put the sequence on the workers carried the whole context ...
    NewSequence prefill{.seq_id = "cmpl-00000000deadbeef#0",
                        .num_prompt_tokens = context_len,
                        .num_scheduled_tokens = context_len,
                        .seed = 7};
    for (int32_t i = 0; i < context_len; ++i) prefill.token_ids.push_back(1000 + i % 30000);
    for (int32_t b = 0; b * kBlockSize < context_len + 1; ++b) prefill.block_ids.push_back(b);
    // ... the decode step after it, with the next token's slot already in the last block.
    StepPlan plan{.step_id = context_len,
                  .cached_sequences = {{.seq_id = prefill.seq_id, .num_scheduled_tokens = 1}}};
    internal::StepPlan proto;
    EncodeStepPlan(plan, &proto);
    internal::NewSequence prefill_proto;
    EncodeNewSequence(prefill, &prefill_proto);
    return std::make_pair(proto.cached_sequences(0).ByteSizeLong(), prefill_proto.ByteSizeLong());
  };
  const auto [decode_short, prefill_short] = decode_plan(10);
  const auto [decode_long, prefill_long] = decode_plan(10000);
  EXPECT_EQ(decode_short, decode_long);
  EXPECT_LT(decode_long, 40u);
  EXPECT_GT(prefill_long, 100 * prefill_short / 10);  // the prefill, for contrast, does grow
}

}  // namespace
}  // namespace pagoda
