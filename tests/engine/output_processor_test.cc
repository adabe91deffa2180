// Checks OutputProcessor with the real stories260K tokenizer: text deltas across split UTF-8 and
// SentencePiece spaces, stop strings across token boundaries (held back, never emitted, later
// tokens dropped, the sequence reported for FinishSequence), scheduler finishes (EOS, stop token
// ids, length), abort mid-decode, n > 1 indices, beam results and usage.
#include "engine/output_processor.h"

#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/tokenizer/llama2c_tokenizer.h"
#include "common/tokenizer/tokenizer.h"
#include "common/unicode_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagoda {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

std::unique_ptr<Tokenizer> LoadStories() {
  auto vocab =
      ReadLlama2cTokenizer(std::string(PAGODA_SHARED_DIR) + "/models/stories260K/tok512.bin", 512);
  EXPECT_TRUE(vocab.ok()) << vocab.status();
  if (!vocab.ok()) return nullptr;
  auto files = ConvertLlama2cTokenizer(*vocab, 512);
  EXPECT_TRUE(files.ok()) << files.status();
  if (!files.ok()) return nullptr;
  auto tokenizer =
      Tokenizer::FromJson(files->tokenizer_json, files->tokenizer_config_json, "stories260K");
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return tokenizer.ok() ? std::move(tokenizer).value() : nullptr;
}

class OutputProcessorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tokenizer_ = LoadStories();
    ASSERT_NE(tokenizer_, nullptr);
    processor_ = std::make_unique<OutputProcessor>(tokenizer_.get());
  }

  // A request whose prompt is `prompt`; returns the ids of `continuation` after that prompt.
  std::vector<int32_t> AddRequest(const std::string& id, const std::string& prompt,
                                  const std::string& continuation, SamplingParams params = {}) {
    EngineRequest request{.request_id = id,
                          .prompt_token_ids = tokenizer_->Encode(prompt),
                          .params = std::move(params)};
    const std::vector<int32_t> full = tokenizer_->Encode(prompt + continuation);
    EXPECT_TRUE(processor_
                    ->AddRequest(request,
                                 [this](const RequestOutput& delta) {
                                   deltas_.push_back(delta);
                                   MergeRequestOutput(totals_[delta.request_id], delta);
                                 })
                    .ok());
    return std::vector<int32_t>(full.begin() + request.prompt_token_ids.size(), full.end());
  }

  static SequenceUpdate Update(const std::string& request_id, int32_t index,
                               std::vector<int32_t> ids,
                               std::optional<FinishReason> finish = std::nullopt) {
    return SequenceUpdate{.request_id = request_id,
                          .seq_id = request_id + "#" + std::to_string(index),
                          .index = index,
                          .new_token_ids = std::move(ids),
                          .finish_reason = finish};
  }

  // One update per token; the last carries `finish`.
  std::vector<std::string> FeedOneByOne(const std::string& request_id,
                                        const std::vector<int32_t>& ids,
                                        std::optional<FinishReason> finish = std::nullopt) {
    std::vector<std::string> stopped;
    for (size_t i = 0; i < ids.size(); ++i) {
      std::vector<SequenceUpdate> step = {
          Update(request_id, 0, {ids[i]}, i + 1 == ids.size() ? finish : std::nullopt)};
      for (std::string& s : processor_->Process(step)) stopped.push_back(std::move(s));
    }
    return stopped;
  }

  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<OutputProcessor> processor_;
  std::vector<RequestOutput> deltas_;
  std::map<std::string, RequestOutput> totals_;
};

TEST_F(OutputProcessorTest, DeltasConcatenateToTheDecodedTextWithSpacesAndSplitCharacters) {
  SamplingParams params;
  const std::vector<int32_t> ids = AddRequest("r", "Lily said", " 你好 to the 猫 dog", params);
  ASSERT_GT(ids.size(), 8u);
  FeedOneByOne("r", ids, FinishReason::kLength);
  for (const RequestOutput& d : deltas_) {
    ASSERT_EQ(d.outputs.size(), 1u);
    EXPECT_TRUE(IsValidUtf8(d.outputs[0].text)) << d.outputs[0].text;
  }
  const RequestOutput& total = totals_["r"];
  ASSERT_TRUE(total.finished);
  ASSERT_EQ(total.outputs.size(), 1u);
  EXPECT_EQ(total.outputs[0].text, " 你好 to the 猫 dog");
  EXPECT_EQ(total.outputs[0].token_ids, ids);
  EXPECT_EQ(total.outputs[0].finish_reason, FinishReason::kLength);
  ASSERT_TRUE(total.usage.has_value());
  EXPECT_EQ(total.usage->prompt_tokens,
            static_cast<int64_t>(tokenizer_->Encode("Lily said").size()));
  EXPECT_EQ(total.usage->completion_tokens, static_cast<int64_t>(ids.size()));
  EXPECT_EQ(processor_->num_requests(), 0);
}

TEST_F(OutputProcessorTest, StopStringAcrossTokensIsHeldBackNeverEmittedAndReported) {
  SamplingParams params;
  params.stop = {"big dog"};
  const std::vector<int32_t> ids =
      AddRequest("r", "Once upon a time", " there was a big dog and a cat", params);
  const std::vector<std::string> stopped = FeedOneByOne("r", ids);
  EXPECT_THAT(stopped, ElementsAre("r#0"));
  std::string streamed;
  for (const RequestOutput& d : deltas_) {
    streamed += d.outputs[0].text;
    EXPECT_EQ(streamed.find("big"), std::string::npos) << "a partial stop string was shown";
  }
  const RequestOutput& total = totals_["r"];
  ASSERT_TRUE(total.finished);
  EXPECT_EQ(total.outputs[0].text, " there was a ");
  EXPECT_EQ(total.outputs[0].finish_reason, FinishReason::kStop);
  EXPECT_EQ(total.outputs[0].stop_reason, StopReason(std::string("big dog")));
  // The tokens end with the one that completed the stop string.
  const std::string kept = tokenizer_->Decode(total.outputs[0].token_ids, true);
  EXPECT_TRUE(kept.ends_with("dog")) << kept;
  EXPECT_LT(total.outputs[0].token_ids.size(), ids.size());
  EXPECT_EQ(total.usage->completion_tokens,
            static_cast<int64_t>(total.outputs[0].token_ids.size()));
}

TEST_F(OutputProcessorTest, MultiStepUpdateIsTruncatedAtTheStopString) {
  SamplingParams params;
  params.stop = {"was a"};
  const std::vector<int32_t> ids =
      AddRequest("r", "Once upon a time", " there was a big dog and a cat", params);
  // All tokens in one update, as a k-step plan reports them; the tokens after the stop go.
  std::vector<SequenceUpdate> step = {Update("r", 0, ids)};
  EXPECT_THAT(processor_->Process(step), ElementsAre("r#0"));
  ASSERT_EQ(deltas_.size(), 1u);
  const CompletionOutput& out = deltas_[0].outputs[0];
  EXPECT_TRUE(deltas_[0].finished);
  EXPECT_EQ(out.text, " there ");
  // Decode alone drops SentencePiece's leading space.
  EXPECT_EQ(tokenizer_->Decode(out.token_ids, true), "there was a");
  EXPECT_EQ(out.token_ids, std::vector<int32_t>(ids.begin(), ids.begin() + out.token_ids.size()));
  // Tokens of a step planned before the stop was seen are ignored.
  std::vector<SequenceUpdate> late = {Update("r", 0, {ids.back()})};
  EXPECT_THAT(processor_->Process(late), IsEmpty());
  EXPECT_EQ(deltas_.size(), 1u);
}

TEST_F(OutputProcessorTest, SchedulerStopTokenTextIsLeftOutAndHeldTextFlushed) {
  SamplingParams params;
  params.stop = {"dog!"};
  params.stop_token_ids = {7};
  std::vector<int32_t> ids = AddRequest("r", "Tim saw", " a dog", params);
  ids.push_back(7);
  // " dog" is held (it may begin "dog!") until the stop token ends the sequence.
  SequenceUpdate last = Update("r", 0, {7}, FinishReason::kStop);
  last.stop_token_id = 7;
  ids.pop_back();
  EXPECT_THAT(FeedOneByOne("r", ids), IsEmpty());
  EXPECT_FALSE(totals_["r"].outputs[0].text.ends_with("dog"));
  std::vector<SequenceUpdate> step = {last};
  EXPECT_THAT(processor_->Process(step), IsEmpty());  // the scheduler finished it already
  const RequestOutput& total = totals_["r"];
  ASSERT_TRUE(total.finished);
  EXPECT_EQ(total.outputs[0].text, " a dog");
  EXPECT_EQ(total.outputs[0].finish_reason, FinishReason::kStop);
  EXPECT_EQ(total.outputs[0].stop_reason, StopReason(int32_t{7}));
  EXPECT_EQ(total.outputs[0].token_ids.back(), 7);
}

TEST_F(OutputProcessorTest, EosHasNoStopReason) {
  const int32_t eos = *tokenizer_->eos_token_id();
  std::vector<int32_t> ids = AddRequest("r", "Tim saw", " a dog");
  SequenceUpdate update = Update("r", 0, ids, FinishReason::kStop);
  update.new_token_ids.push_back(eos);
  update.stop_token_id = eos;
  std::vector<SequenceUpdate> step = {update};
  processor_->Process(step);
  const RequestOutput& total = totals_["r"];
  EXPECT_EQ(total.outputs[0].text, " a dog");
  EXPECT_EQ(total.outputs[0].stop_reason, StopReason());
  EXPECT_EQ(total.usage->completion_tokens, static_cast<int64_t>(ids.size() + 1));
}

TEST_F(OutputProcessorTest, AbortMidDecodeFlushesHeldTextAndEndsTheRequest) {
  SamplingParams params;
  params.stop = {"dog and cat"};
  const std::vector<int32_t> ids = AddRequest("r", "Tim saw", " a dog", params);
  FeedOneByOne("r", ids);
  EXPECT_FALSE(totals_["r"].finished);
  processor_->Abort("r", "engine stopped");
  const RequestOutput& total = totals_["r"];
  ASSERT_TRUE(total.finished);
  EXPECT_EQ(total.outputs[0].text, " a dog");
  EXPECT_EQ(total.outputs[0].finish_reason, FinishReason::kAbort);
  EXPECT_EQ(total.error, "engine stopped");
  EXPECT_EQ(total.usage->completion_tokens, static_cast<int64_t>(ids.size()));
  EXPECT_FALSE(processor_->HasRequest("r"));
  processor_->Abort("r");  // unknown now: ignored
  EXPECT_TRUE(deltas_.back().finished);
}

TEST_F(OutputProcessorTest, SeveralSamplesStreamByIndexAndFinishTogether) {
  SamplingParams params;
  params.n = 2;
  const std::vector<int32_t> a = AddRequest("r", "Tim saw", " a dog", params);
  const std::vector<int32_t> b = tokenizer_->Encode("Tim saw a cat");
  const std::vector<int32_t> b_out(b.begin() + tokenizer_->Encode("Tim saw").size(), b.end());
  std::vector<SequenceUpdate> step = {Update("r", 1, b_out), Update("r", 0, a)};
  processor_->Process(step);
  ASSERT_EQ(deltas_.size(), 1u);  // one callback per request and step
  ASSERT_EQ(deltas_[0].outputs.size(), 2u);
  EXPECT_FALSE(deltas_[0].finished);
  std::vector<SequenceUpdate> finish0 = {Update("r", 0, {}, FinishReason::kLength)};
  processor_->Process(finish0);
  EXPECT_FALSE(deltas_.back().finished);
  std::vector<SequenceUpdate> finish1 = {Update("r", 1, {}, FinishReason::kLength)};
  processor_->Process(finish1);
  const RequestOutput& total = totals_["r"];
  ASSERT_TRUE(total.finished);
  ASSERT_EQ(total.outputs.size(), 2u);
  EXPECT_EQ(total.outputs[0].index, 0);
  EXPECT_EQ(total.outputs[0].text, " a dog");
  EXPECT_EQ(total.outputs[1].text, " a cat");
  EXPECT_EQ(total.usage->completion_tokens, static_cast<int64_t>(a.size() + b_out.size()));
}

TEST_F(OutputProcessorTest, BeamResultsArriveOnceWithTheirScores) {
  SamplingParams params;
  params.n = 2;
  params.beam_width = 3;
  const std::vector<int32_t> a = AddRequest("r", "Tim saw", " a dog", params);
  SequenceUpdate best = Update("r", 0, a, FinishReason::kLength);
  best.cumulative_logprob = -1.5;
  best.request_finished = true;
  // Only one beam came back: the request still ends.
  std::vector<SequenceUpdate> step = {best};
  processor_->Process(step);
  ASSERT_EQ(deltas_.size(), 1u);
  EXPECT_TRUE(deltas_[0].finished);
  ASSERT_EQ(deltas_[0].outputs.size(), 1u);
  EXPECT_EQ(deltas_[0].outputs[0].text, " a dog");
  EXPECT_EQ(deltas_[0].outputs[0].cumulative_logprob, -1.5);
}

TEST_F(OutputProcessorTest, LogprobsFollowTheKeptTokens) {
  SamplingParams params;
  params.logprobs = 1;
  params.stop = {"big"};
  const std::vector<int32_t> ids = AddRequest("r", "Tim saw", " the big dog", params);
  SequenceUpdate update = Update("r", 0, ids);
  for (size_t i = 0; i < ids.size(); ++i) {
    update.logprobs.push_back(-0.5f);
    update.top_logprobs.push_back({{ids[i], -0.5f}});
  }
  std::vector<SequenceUpdate> step = {update};
  processor_->Process(step);
  const CompletionOutput& out = totals_["r"].outputs[0];
  EXPECT_EQ(out.text, " the ");
  ASSERT_LT(out.token_ids.size(), ids.size());
  EXPECT_EQ(out.logprobs.size(), out.token_ids.size());
  EXPECT_EQ(out.top_logprobs.size(), out.token_ids.size());
  ASSERT_TRUE(out.cumulative_logprob.has_value());
  EXPECT_DOUBLE_EQ(*out.cumulative_logprob, -0.5 * static_cast<double>(out.token_ids.size()));
}

TEST_F(OutputProcessorTest, ResumedRequestContinuesTheStreamSeamlessly) {
  SamplingParams params;
  params.stop = {"big dog"};
  params.logprobs = 0;
  const std::vector<int32_t> prompt = tokenizer_->Encode("Lily said");
  const std::vector<int32_t> ids =
      AddRequest("a", "Lily said", " 你好 there was a big bag, a big dog and a cat", params);
  // Feeds `tokens` one per step, each with logprob -0.25; returns the stopped seq ids.
  auto feed = [this](const std::string& id, std::span<const int32_t> tokens) {
    std::vector<std::string> stopped;
    for (int32_t token : tokens) {
      SequenceUpdate update = Update(id, 0, {token});
      update.logprobs = {-0.25f};
      std::vector<SequenceUpdate> step = {update};
      for (std::string& s : processor_->Process(step)) stopped.push_back(std::move(s));
    }
    return stopped;
  };
  feed("a", ids);
  const RequestOutput full = totals_["a"];
  ASSERT_TRUE(full.finished);
  ASSERT_EQ(full.outputs[0].finish_reason, FinishReason::kStop);
  // What a client of "a" had after k tokens: one delta per token.
  std::vector<std::string> streamed = {""};
  for (const RequestOutput& d : deltas_) streamed.push_back(streamed.back() + d.outputs[0].text);
  const size_t num_kept = full.outputs[0].token_ids.size();
  ASSERT_EQ(streamed.size(), num_kept + 1);

  for (size_t k = 0; k < num_kept; ++k) {
    SCOPED_TRACE(k);
    const std::string id = "b" + std::to_string(k);
    EngineRequest request{.request_id = id, .prompt_token_ids = prompt, .params = params};
    request.resumed_output_token_ids.assign(ids.begin(), ids.begin() + k);
    request.resumed_cumulative_logprob = -0.25 * static_cast<double>(k);
    ASSERT_TRUE(processor_
                    ->AddRequest(request,
                                 [this](const RequestOutput& delta) {
                                   MergeRequestOutput(totals_[delta.request_id], delta);
                                 })
                    .ok());
    EXPECT_THAT(feed(id, std::span(ids).subspan(k)), ElementsAre(id + "#0"));
    const RequestOutput& resumed = totals_[id];
    ASSERT_TRUE(resumed.finished);
    const CompletionOutput& out = resumed.outputs[0];
    EXPECT_EQ(streamed[k] + out.text, full.outputs[0].text);
    std::vector<int32_t> all_ids(ids.begin(), ids.begin() + k);
    all_ids.insert(all_ids.end(), out.token_ids.begin(), out.token_ids.end());
    EXPECT_EQ(all_ids, full.outputs[0].token_ids);
    EXPECT_EQ(out.logprobs.size(), num_kept - k) << "only what this replica streamed";
    EXPECT_EQ(out.cumulative_logprob, full.outputs[0].cumulative_logprob);
    EXPECT_EQ(out.finish_reason, FinishReason::kStop);
    EXPECT_EQ(out.stop_reason, full.outputs[0].stop_reason);
    ASSERT_TRUE(resumed.usage.has_value());
    EXPECT_EQ(resumed.usage->prompt_tokens, full.usage->prompt_tokens);
    EXPECT_EQ(resumed.usage->completion_tokens, full.usage->completion_tokens);
  }

  // Outputs through the token that completes the stop string: "a" had finished there.
  EngineRequest past_stop{.request_id = "c", .prompt_token_ids = prompt, .params = params};
  past_stop.resumed_output_token_ids.assign(ids.begin(), ids.begin() + num_kept);
  const absl::Status s = processor_->AddRequest(past_stop, [](const RequestOutput&) {});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_FALSE(processor_->HasRequest("c"));
  EngineRequest two = past_stop;
  two.params.n = 2;
  two.resumed_output_token_ids.resize(1);
  EXPECT_EQ(processor_->AddRequest(two, [](const RequestOutput&) {}).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(OutputProcessorTest, StopsReachTheCallerBeforeAnyCallbackRuns) {
  SamplingParams params;
  params.stop = {"dog"};
  const std::vector<int32_t> ids = AddRequest("r", "Tim saw", " a dog", params);
  std::vector<std::string> order;
  processor_ = std::make_unique<OutputProcessor>(tokenizer_.get());
  EngineRequest request{
      .request_id = "r", .prompt_token_ids = tokenizer_->Encode("Tim saw"), .params = params};
  ASSERT_TRUE(processor_
                  ->AddRequest(request,
                               [&order](const RequestOutput& delta) {
                                 if (delta.finished) order.push_back("final delta");
                               })
                  .ok());
  std::vector<SequenceUpdate> step = {Update("r", 0, ids)};
  processor_->Process(step, [&order](std::span<const std::string> stopped) {
    for (const std::string& seq_id : stopped) order.push_back(seq_id);
  });
  EXPECT_THAT(order, ElementsAre("r#0", "final delta"));
}

TEST_F(OutputProcessorTest, RejectsADuplicateRequestId) {
  AddRequest("r", "Tim saw", " a dog");
  EngineRequest again{.request_id = "r", .prompt_token_ids = {1}};
  EXPECT_EQ(processor_->AddRequest(again, [](const RequestOutput&) {}).code(),
            absl::StatusCode::kAlreadyExists);
}

}  // namespace
}  // namespace pagoda
