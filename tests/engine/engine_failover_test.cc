// Failover on the real stories260K model: a request resumed on another EngineLoop from the first
// k tokens a client had received (EngineRequest::resumed_output_token_ids) continues the stream
// exactly: what the client had + what the resumed request streams equals the uninterrupted
// request's text, token ids, logprobs, finish and usage. Greedy, and seeded temperature-1.0
// sampling with a stop string and repetition / frequency / presence penalties, so seeded draws,
// penalty counts and the stop checker's held-back text all have to carry over.
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/model_config.h"
#include "common/tokenizer/tokenizer.h"
#include "engine/engine_loop.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/stories260k.h"
#include "worker/in_process_executor.h"
#include "worker/model_weights.h"

namespace pagoda {
namespace {

using testing::Stories260KDir;

// What a client of one request received: the deltas, accumulated after each one.
struct Stream {
  absl::Mutex mu;
  std::vector<int32_t> token_ids;
  std::string text;
  double cumulative_logprob = 0;
  // After delta i: tokens, text and cumulative logprob received so far.
  std::vector<size_t> num_tokens_after;
  std::vector<std::string> text_after;
  std::vector<double> logprob_after;
  RequestOutput total;
  bool finished = false;
  bool Finished() const { return finished; }
};

class EngineFailoverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto config = ModelConfig::FromDirectory(Stories260KDir());
    ASSERT_TRUE(config.ok()) << config.status();
    config_ = *config;
    auto tokenizer = Tokenizer::FromDirectory(Stories260KDir());
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    tokenizer_ = std::move(*tokenizer);
    eos_ids_ = EosTokenIds(config_.eos_token_ids, *tokenizer_);
  }

  std::unique_ptr<EngineLoop> MakeEngine(const EngineConfig& config) {
    auto weights = LoadModelWeights(config_, Stories260KDir());
    EXPECT_TRUE(weights.ok()) << weights.status();
    auto executor = InProcessExecutor::Create(
        config_, std::move(*weights),
        {.num_device_blocks = 256, .block_size = 16, .extra_eos_token_ids = eos_ids_});
    EXPECT_TRUE(executor.ok()) << executor.status();
    if (!executor.ok()) return nullptr;
    auto engine = EngineLoop::Create(config, std::move(*executor), tokenizer_.get(), eos_ids_);
    EXPECT_TRUE(engine.ok()) << engine.status();
    return engine.ok() ? std::move(*engine) : nullptr;
  }

  // Runs `request` to its end, recording the stream as a client sees it.
  static void RunStreamed(EngineLoop& engine, const EngineRequest& request, Stream& stream) {
    const absl::Status s = engine.AddRequest(request, [&stream](const RequestOutput& delta) {
      absl::MutexLock lock(&stream.mu);
      MergeRequestOutput(stream.total, delta);
      for (const CompletionOutput& out : delta.outputs) {
        stream.token_ids.insert(stream.token_ids.end(), out.token_ids.begin(), out.token_ids.end());
        stream.text += out.text;
        if (out.cumulative_logprob) stream.cumulative_logprob = *out.cumulative_logprob;
      }
      stream.num_tokens_after.push_back(stream.token_ids.size());
      stream.text_after.push_back(stream.text);
      stream.logprob_after.push_back(stream.cumulative_logprob);
      stream.finished = delta.finished;
    });
    ASSERT_TRUE(s.ok()) << s;
    absl::MutexLock lock(&stream.mu, absl::Condition(&stream, &Stream::Finished));
  }

  // Runs `request` uninterrupted on one engine, then resumes it on another from several points
  // a client could have been at when the first one failed.
  void ExpectSeamlessFailover(const EngineRequest& request, const std::string& what) {
    SCOPED_TRACE(what);
    std::unique_ptr<EngineLoop> original = MakeEngine(EngineConfig{});
    // The healthy replica plans differently: prefix caching, multi-step, chunked prefill.
    std::unique_ptr<EngineLoop> healthy = MakeEngine(EngineConfig{.max_num_seqs = 8,
                                                                  .max_num_batched_tokens = 24,
                                                                  .num_scheduler_steps = 4,
                                                                  .enable_prefix_caching = true});
    ASSERT_NE(original, nullptr);
    ASSERT_NE(healthy, nullptr);
    Stream full;
    RunStreamed(*original, request, full);
    absl::MutexLock full_lock(&full.mu);
    ASSERT_EQ(full.total.outputs.size(), 1u);
    const CompletionOutput& expected = full.total.outputs[0];
    ASSERT_TRUE(full.total.usage.has_value());
    ASSERT_GE(expected.token_ids.size(), 8u) << "too short to split";

    // Delta boundaries: every token here (one per step), a few of them spread over the output.
    const size_t num_deltas = full.num_tokens_after.size();
    for (size_t d :
         {size_t{0}, size_t{1}, size_t{4}, num_deltas / 3, num_deltas / 2, num_deltas - 2}) {
      const size_t k = full.num_tokens_after[d];
      if (k == 0 || k >= expected.token_ids.size()) continue;
      SCOPED_TRACE("resumed after " + std::to_string(k) + " tokens");
      EngineRequest resumed = request;
      resumed.resumed_output_token_ids.assign(full.token_ids.begin(), full.token_ids.begin() + k);
      resumed.resumed_cumulative_logprob = full.logprob_after[d];
      // Twice on the same replica: the second finds the first's blocks in its prefix cache.
      for (int round = 0; round < 2; ++round) {
        auto results = healthy->RunToCompletion({resumed});
        ASSERT_TRUE(results.ok()) << results.status();
        const RequestOutput& result = (*results)[0];
        ASSERT_EQ(result.outputs.size(), 1u);
        const CompletionOutput& out = result.outputs[0];
        EXPECT_EQ(full.text_after[d] + out.text, expected.text);
        std::vector<int32_t> ids = resumed.resumed_output_token_ids;
        ids.insert(ids.end(), out.token_ids.begin(), out.token_ids.end());
        EXPECT_EQ(ids, expected.token_ids);
        EXPECT_EQ(out.finish_reason, expected.finish_reason);
        EXPECT_EQ(out.stop_reason, expected.stop_reason);
        ASSERT_TRUE(result.usage.has_value());
        EXPECT_EQ(result.usage->prompt_tokens, full.total.usage->prompt_tokens);
        EXPECT_EQ(result.usage->completion_tokens, full.total.usage->completion_tokens);
        if (request.params.logprobs >= 0) {
          ASSERT_EQ(out.logprobs.size(), expected.token_ids.size() - k) << "only the new tokens";
          for (size_t i = 0; i < out.logprobs.size(); ++i) {
            EXPECT_NEAR(out.logprobs[i], expected.logprobs[k + i], 1e-4) << i;
          }
          ASSERT_TRUE(out.cumulative_logprob.has_value());
          EXPECT_NEAR(*out.cumulative_logprob, *expected.cumulative_logprob, 1e-3);
        }
      }
    }
  }

  EngineRequest Prompt(const std::string& id, const std::string& prompt) const {
    EngineRequest r{.request_id = id, .prompt_token_ids = tokenizer_->Encode(prompt)};
    r.params.max_tokens = 64;
    return r;
  }

  ModelConfig config_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::vector<int32_t> eos_ids_;  // what generation stops at
};

TEST_F(EngineFailoverTest, GreedyRequestContinuesSeamlessly) {
  EngineRequest r = Prompt("greedy", "Once upon a time, there was a little girl named Lily.");
  r.params.temperature = 0;
  r.params.logprobs = 0;
  ExpectSeamlessFailover(r, "greedy");
}

TEST_F(EngineFailoverTest, SeededPenalizedRequestWithAStopStringContinuesSeamlessly) {
  EngineRequest r = Prompt("sampled", "One day, a boy went to the park.");
  r.seed = 1234;
  r.params.temperature = 1.0f;
  r.params.repetition_penalty = 1.3f;
  r.params.frequency_penalty = 0.5f;
  r.params.presence_penalty = 0.2f;
  r.params.logprobs = 0;
  r.params.ignore_eos = true;
  r.params.max_tokens = 96;
  // A stop string from late in the sampled text: it changes no draw, so the output without it
  // tells that it will match.
  std::unique_ptr<EngineLoop> probe = MakeEngine(EngineConfig{});
  ASSERT_NE(probe, nullptr);
  auto unstopped = probe->RunToCompletion({r});
  ASSERT_TRUE(unstopped.ok()) << unstopped.status();
  const std::string& text = (*unstopped)[0].outputs[0].text;
  const size_t space = text.find(' ', text.size() * 2 / 3);
  ASSERT_NE(space, std::string::npos) << text;
  const size_t word_end = text.find(' ', space + 1);
  const std::string stop = text.substr(space, std::min(word_end, space + 6) - space);
  ASSERT_GE(stop.size(), 2u) << text;
  r.params.stop = {stop};
  Stream check;
  RunStreamed(*probe, r, check);
  {
    absl::MutexLock lock(&check.mu);
    ASSERT_EQ(check.total.outputs[0].finish_reason, FinishReason::kStop) << text << " / " << stop;
  }
  ExpectSeamlessFailover(r, "seeded, penalties, stop '" + stop + "'");
}

TEST_F(EngineFailoverTest, AResumedRequestPastItsStopStringIsRefused) {
  std::unique_ptr<EngineLoop> engine = MakeEngine(EngineConfig{});
  ASSERT_NE(engine, nullptr);
  EngineRequest r = Prompt("r", "Once upon a time");
  r.params.temperature = 0;
  r.params.ignore_eos = true;
  r.params.max_tokens = 32;
  auto full = engine->RunToCompletion({r});
  ASSERT_TRUE(full.ok()) << full.status();
  const CompletionOutput& out = (*full)[0].outputs[0];
  ASSERT_EQ(out.token_ids.size(), 32u);
  // Its first 8 bytes come from at most 8 tokens, all among the resumed ones.
  r.params.stop = {out.text.substr(0, 8)};
  r.resumed_output_token_ids.assign(out.token_ids.begin(), out.token_ids.begin() + 16);
  const absl::Status s = engine->AddRequest(r, [](const RequestOutput&) {});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("stop string"));
}

}  // namespace
}  // namespace pagoda
