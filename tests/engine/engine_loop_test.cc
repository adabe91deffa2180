// Checks EngineLoop against a scripted executor: outputs stream to callbacks with one final
// delta per request, an executor error fails every request with a clear error and closes the
// engine, Stop() ends running requests, admission errors come back from AddRequest, a finished
// request's id is free once its final delta is delivered, and the prefix cache can be queried.
#include "engine/engine_loop.h"

#include <atomic>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/tokenizer/llama2c_tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagoda {
namespace {

using ::testing::HasSubstr;

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

// Samples token 300 for every sequence that reaches the end of its known tokens (prompts are
// shorter than the token budget, so every plan finishes their prefill); fails from step
// `fail_at` on.
class ScriptedExecutor final : public Executor {
 public:
  // `hold`, when set, keeps every step from running until it is notified.
  explicit ScriptedExecutor(int64_t fail_at = -1, absl::Notification* hold = nullptr)
      : fail_at_(fail_at), hold_(hold) {}

  const ExecutorInfo& info() const override { return info_; }

  std::future<absl::StatusOr<StepResult>> Submit(StepPlan plan) override {
    if (hold_ != nullptr) hold_->WaitForNotification();
    std::promise<absl::StatusOr<StepResult>> promise;
    const int64_t step = num_steps_++;
    if (fail_at_ >= 0 && step >= fail_at_) {
      promise.set_value(absl::InternalError("device lost"));
      return promise.get_future();
    }
    StepResult result{.step_id = plan.step_id};
    auto sample = [&](const std::string& seq_id) {
      SequenceOutput out{.seq_id = seq_id};
      for (int32_t i = 0; i < plan.num_steps; ++i) out.token_ids.push_back(300);
      result.outputs.push_back(std::move(out));
    };
    for (const NewSequence& seq : plan.new_sequences) {
      if (seq.num_computed_tokens + seq.num_scheduled_tokens ==
          static_cast<int64_t>(seq.token_ids.size())) {
        sample(seq.seq_id);
      }
    }
    for (const CachedSequence& seq : plan.cached_sequences) {
      if (seq.num_scheduled_tokens > 0) sample(seq.seq_id);
    }
    promise.set_value(std::move(result));
    return promise.get_future();
  }

 private:
  const ExecutorInfo info_{
      .num_device_blocks = 256, .block_size = 16, .max_model_len = 512, .vocab_size = 512};
  const int64_t fail_at_;
  absl::Notification* const hold_;
  std::atomic<int64_t> num_steps_ = 0;
};

struct Collected {
  absl::Mutex mu;
  std::vector<RequestOutput> totals;
  std::vector<int> num_final;
  int num_finished = 0;
  bool AllFinished() const { return num_finished == static_cast<int>(totals.size()); }
};

class EngineLoopTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tokenizer_ = LoadStories();
    ASSERT_NE(tokenizer_, nullptr);
  }

  EngineRequest Request(const std::string& id, int32_t max_tokens) {
    EngineRequest r{.request_id = id, .prompt_token_ids = tokenizer_->Encode("Once upon a time")};
    r.params.max_tokens = max_tokens;
    r.params.ignore_eos = true;
    return r;
  }

  // Adds `count` requests whose callbacks collect into `c`.
  // With `refusable`, a refused request (the engine failed meanwhile) ends the adding: `c`
  // then expects only the requests before it.
  void AddAll(EngineLoop& engine, Collected& c, int count, int32_t max_tokens,
              bool refusable = false) {
    {
      absl::MutexLock lock(&c.mu);
      c.totals.resize(count);
      c.num_final.resize(count);
    }
    for (int i = 0; i < count; ++i) {
      auto callback = [&c, i](const RequestOutput& delta) {
        absl::MutexLock lock(&c.mu);
        MergeRequestOutput(c.totals[i], delta);
        if (delta.finished) {
          ++c.num_final[i];
          ++c.num_finished;
        }
      };
      const absl::Status added =
          engine.AddRequest(Request("r" + std::to_string(i), max_tokens), callback);
      if (!added.ok() && refusable && i > 0) {
        EXPECT_EQ(added.code(), absl::StatusCode::kFailedPrecondition) << added;
        absl::MutexLock lock(&c.mu);
        c.totals.resize(i);
        c.num_final.resize(i);
        return;
      }
      ASSERT_TRUE(added.ok()) << added;
    }
  }

  std::unique_ptr<Tokenizer> tokenizer_;
};

TEST_F(EngineLoopTest, StreamsEveryRequestToOneFinalDelta) {
  for (bool async_output : {true, false}) {
    ScriptedExecutor executor;
    auto engine =
        EngineLoop::Create(EngineConfig{.num_scheduler_steps = 3, .async_output = async_output},
                           &executor, tokenizer_.get(), {});
    ASSERT_TRUE(engine.ok()) << engine.status();
    Collected c;
    AddAll(**engine, c, 5, /*max_tokens=*/10);
    absl::MutexLock lock(&c.mu, absl::Condition(&c, &Collected::AllFinished));
    for (size_t i = 0; i < c.totals.size(); ++i) {
      EXPECT_EQ(c.num_final[i], 1);
      ASSERT_EQ(c.totals[i].outputs.size(), 1u);
      EXPECT_EQ(c.totals[i].outputs[0].token_ids, std::vector<int32_t>(10, 300));
      EXPECT_EQ(c.totals[i].outputs[0].finish_reason, FinishReason::kLength);
      EXPECT_TRUE(c.totals[i].error.empty());
    }
  }
}

TEST_F(EngineLoopTest, ExecutorErrorFailsEveryRequestAndClosesTheEngine) {
  ScriptedExecutor executor(/*fail_at=*/3);
  auto engine = EngineLoop::Create(EngineConfig{}, &executor, tokenizer_.get(), {});
  ASSERT_TRUE(engine.ok());
  Collected c;
  // On a busy machine the loop may reach step 3 before the last requests are added.
  AddAll(**engine, c, 4, /*max_tokens=*/100, /*refusable=*/true);
  {
    absl::MutexLock lock(&c.mu, absl::Condition(&c, &Collected::AllFinished));
    for (size_t i = 0; i < c.totals.size(); ++i) {
      EXPECT_EQ(c.num_final[i], 1);
      EXPECT_EQ(c.totals[i].outputs[0].finish_reason, FinishReason::kAbort);
      EXPECT_THAT(c.totals[i].error, HasSubstr("device lost"));
      EXPECT_LT(c.totals[i].outputs[0].token_ids.size(), 100u);
    }
  }
  EXPECT_THAT(std::string((*engine)->status().message()), HasSubstr("device lost"));
  const absl::Status again = (*engine)->AddRequest(Request("late", 4), [](const RequestOutput&) {});
  EXPECT_EQ(again.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(again.message()), HasSubstr("device lost"));
  auto offline = (*engine)->RunToCompletion({Request("batch", 4)});
  EXPECT_EQ(offline.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(EngineLoopTest, StopEndsEveryRequestExactlyOnce) {
  ScriptedExecutor executor;
  auto engine = EngineLoop::Create(EngineConfig{}, &executor, tokenizer_.get(), {});
  ASSERT_TRUE(engine.ok());
  Collected c;
  AddAll(**engine, c, 6, /*max_tokens=*/400);
  (*engine)->Stop();
  absl::MutexLock lock(&c.mu);
  ASSERT_TRUE(c.AllFinished());
  for (size_t i = 0; i < c.totals.size(); ++i) {
    EXPECT_EQ(c.num_final[i], 1);
    const CompletionOutput& out = c.totals[i].outputs[0];
    if (out.finish_reason == FinishReason::kAbort) {
      EXPECT_EQ(c.totals[i].error, "engine stopped");
    } else {
      EXPECT_EQ(out.token_ids.size(), 400u);
    }
  }
  EXPECT_EQ((*engine)->AddRequest(Request("late", 4), [](const RequestOutput&) {}).code(),
            absl::StatusCode::kFailedPrecondition);
  (*engine)->Stop();  // idempotent
}

TEST_F(EngineLoopTest, AdmissionErrorsComeBackFromAddRequest) {
  ScriptedExecutor executor;
  auto engine = EngineLoop::Create(EngineConfig{}, &executor, tokenizer_.get(), {});
  ASSERT_TRUE(engine.ok());
  int calls = 0;
  const absl::Status s =
      (*engine)->AddRequest(Request("long", 1000), [&calls](const RequestOutput&) { ++calls; });
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  auto results = (*engine)->RunToCompletion({Request("a", 3), Request("b", 3)});
  ASSERT_TRUE(results.ok()) << results.status();
  EXPECT_EQ((*results)[1].outputs[0].token_ids.size(), 3u);
  EXPECT_EQ(calls, 0);
}

TEST_F(EngineLoopTest, AFinishedRequestsIdIsReusableOnceItsFinalDeltaIsDelivered) {
  for (bool async_output : {true, false}) {
    SCOPED_TRACE(async_output);
    ScriptedExecutor executor;
    auto engine = EngineLoop::Create(EngineConfig{.async_output = async_output}, &executor,
                                     tokenizer_.get(), {});
    ASSERT_TRUE(engine.ok());
    EngineLoop* loop = engine->get();
    // Round 0's final callback adds round 1 under the same id, and so on; a non-final callback
    // finds the id taken.
    Collected c;
    c.totals.resize(3);
    c.num_final.resize(3);
    std::vector<absl::Status> duplicates;
    std::function<void(int)> add = [&](int round) {
      auto callback = [&, round](const RequestOutput& delta) {
        {
          absl::MutexLock lock(&c.mu);
          MergeRequestOutput(c.totals[round], delta);
          if (!delta.finished) {
            duplicates.push_back(loop->AddRequest(Request("r", 2), [](const RequestOutput&) {}));
            return;
          }
          ++c.num_final[round];
          ++c.num_finished;
        }
        if (round + 1 < 3) add(round + 1);
      };
      const absl::Status s = loop->AddRequest(Request("r", 3 + round), callback);
      EXPECT_TRUE(s.ok()) << "round " << round << ": " << s;
    };
    add(0);
    {
      absl::MutexLock lock(&c.mu, absl::Condition(&c, &Collected::AllFinished));
      for (int round = 0; round < 3; ++round) {
        EXPECT_EQ(c.num_final[round], 1);
        EXPECT_EQ(c.totals[round].outputs[0].token_ids, std::vector<int32_t>(3 + round, 300));
      }
      ASSERT_FALSE(duplicates.empty());
      for (const absl::Status& s : duplicates)
        EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists);
    }
    // Right after RunToCompletion, also when a stop string (the output processor's) ended it.
    EngineRequest stopped = Request("again", 50);
    stopped.params.stop = {tokenizer_->Decode({300, 300, 300}, true)};
    for (int i = 0; i < 20; ++i) {
      auto results = loop->RunToCompletion({i % 2 == 0 ? Request("again", 1 + i % 3) : stopped});
      ASSERT_TRUE(results.ok()) << i << ": " << results.status();
      const CompletionOutput& out = (*results)[0].outputs[0];
      if (i % 2 == 0) {
        EXPECT_EQ(out.token_ids.size(), static_cast<size_t>(1 + i % 3));
      } else {
        EXPECT_EQ(out.finish_reason, FinishReason::kStop);
        EXPECT_LT(out.token_ids.size(), 50u);
      }
    }
  }
}

TEST_F(EngineLoopTest, ResumedRequestsThatCannotContinueAreRefused) {
  ScriptedExecutor executor;
  auto engine = EngineLoop::Create(EngineConfig{}, &executor, tokenizer_.get(), {});
  ASSERT_TRUE(engine.ok());
  int calls = 0;
  auto add = [&](const EngineRequest& r) {
    return (*engine)->AddRequest(r, [&calls](const RequestOutput&) { ++calls; });
  };
  EngineRequest r = Request("r", 10);
  r.params.stop = {tokenizer_->Decode({300, 300}, true)};
  r.resumed_output_token_ids = {300, 300};  // the original stopped at the second one
  absl::Status s = add(r);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("stop string"));
  r.resumed_output_token_ids = {300};
  r.params.n = 2;
  EXPECT_EQ(add(r).code(), absl::StatusCode::kInvalidArgument);
  r.params.n = 1;
  r.resumed_output_token_ids.assign(10, 7);
  s = add(r);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("max_tokens"));
  r.resumed_output_token_ids = {7, 512};
  EXPECT_EQ(add(r).code(), absl::StatusCode::kInvalidArgument);
  // A valid continuation runs to max_tokens, streaming only the new tokens.
  r.resumed_output_token_ids = {7, 300};
  r.params.stop.clear();
  r.request_id = "ok";
  auto results = (*engine)->RunToCompletion({r});
  ASSERT_TRUE(results.ok()) << results.status();
  EXPECT_EQ((*results)[0].outputs[0].token_ids, std::vector<int32_t>(8, 300));
  EXPECT_EQ((*results)[0].usage->completion_tokens, 10);
  EXPECT_EQ(calls, 0);
}

TEST_F(EngineLoopTest, ReportsTheCachedPrefixOfAPrompt) {
  std::vector<int32_t> prompt;  // 3 blocks of 16
  for (int32_t i = 0; i < 48; ++i) prompt.push_back(10 + i);
  std::vector<int32_t> longer = prompt;
  longer.insert(longer.end(), {7, 8, 9});
  std::vector<int32_t> unrelated(64, 20);
  for (bool caching : {true, false}) {
    SCOPED_TRACE(caching);
    ScriptedExecutor executor;
    auto engine = EngineLoop::Create(EngineConfig{.enable_prefix_caching = caching}, &executor,
                                     tokenizer_.get(), {});
    ASSERT_TRUE(engine.ok());
    EngineLoop& loop = **engine;
    EXPECT_EQ(loop.NumCachedPrefixTokens(longer), 0);
    // Queried from another thread while the loop runs.
    std::thread router([&loop, &longer] {
      for (int i = 0; i < 200; ++i) EXPECT_GE(loop.NumCachedPrefixTokens(longer), 0);
    });
    EngineRequest r = Request("r", 4);
    r.prompt_token_ids = prompt;
    ASSERT_TRUE(loop.RunToCompletion({r}).ok());
    router.join();
    EXPECT_EQ(loop.NumCachedPrefixTokens(longer), caching ? 48 : 0);
    EXPECT_EQ(loop.NumCachedPrefixTokens(prompt), caching ? 32 : 0) << "never the last token";
    EXPECT_EQ(loop.NumCachedPrefixTokens(unrelated), 0);
    EXPECT_EQ(loop.NumCachedPrefixTokens({}), 0);
  }
}

TEST_F(EngineLoopTest, FirstDeltaCarriesWhenTheRequestWasFirstScheduled) {
  for (bool async_output : {true, false}) {
    ScriptedExecutor executor;
    auto engine = EngineLoop::Create(EngineConfig{.async_output = async_output}, &executor,
                                     tokenizer_.get(), {});
    ASSERT_TRUE(engine.ok());
    struct Seen {
      absl::Mutex mu;
      std::vector<std::vector<std::optional<double>>> stamps;  // per request, per delta
      std::vector<double> delivered_s;                         // when each first delta came
      int num_finished = 0;
      bool Done() const { return num_finished == 3; }
    } seen;
    seen.stamps.resize(3);
    seen.delivered_s.resize(3);
    const double before_s = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE((*engine)
                      ->AddRequest(Request("r" + std::to_string(i), 5),
                                   [&seen, i](const RequestOutput& delta) {
                                     absl::MutexLock lock(&seen.mu);
                                     if (seen.stamps[i].empty()) {
                                       seen.delivered_s[i] =
                                           absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
                                     }
                                     seen.stamps[i].push_back(delta.first_scheduled_time_s);
                                     if (delta.finished) ++seen.num_finished;
                                   })
                      .ok());
    }
    absl::MutexLock lock(&seen.mu, absl::Condition(&seen, &Seen::Done));
    for (int i = 0; i < 3; ++i) {
      ASSERT_GE(seen.stamps[i].size(), 2u);
      ASSERT_TRUE(seen.stamps[i][0].has_value()) << "request " << i;
      EXPECT_GE(*seen.stamps[i][0], before_s);
      EXPECT_LE(*seen.stamps[i][0], seen.delivered_s[i]);
      for (size_t d = 1; d < seen.stamps[i].size(); ++d) {
        EXPECT_FALSE(seen.stamps[i][d].has_value()) << "only the first delta carries it";
      }
    }
  }
}

TEST_F(EngineLoopTest, AbortedBeforeSchedulingCarriesNoScheduledTime) {
  // One sequence at a time: the second request waits behind the first until it is aborted.
  // The steps are held until the abort, so the first request cannot finish (and let the second
  // be scheduled) however slowly this thread runs.
  absl::Notification steps_may_run;
  ScriptedExecutor executor(/*fail_at=*/-1, &steps_may_run);
  auto engine =
      EngineLoop::Create(EngineConfig{.max_num_seqs = 1}, &executor, tokenizer_.get(), {});
  ASSERT_TRUE(engine.ok());
  Collected c;
  AddAll(**engine, c, 1, /*max_tokens=*/200);
  absl::Mutex mu;
  std::vector<RequestOutput> deltas;
  ASSERT_TRUE((*engine)
                  ->AddRequest(Request("queued", 4),
                               [&](const RequestOutput& delta) {
                                 absl::MutexLock lock(&mu);
                                 deltas.push_back(delta);
                               })
                  .ok());
  (*engine)->Abort("queued");
  steps_may_run.Notify();
  {
    absl::MutexLock lock(&mu,
                         absl::Condition(
                             +[](std::vector<RequestOutput>* d) { return !d->empty(); }, &deltas));
    ASSERT_EQ(deltas.size(), 1u);
    EXPECT_TRUE(deltas[0].finished);
    EXPECT_FALSE(deltas[0].first_scheduled_time_s.has_value());
  }
  (*engine)->Stop();  // before the collectors its callbacks write to go away
}

TEST_F(EngineLoopTest, StepObserverSeesEveryAppliedStepsTokens) {
  for (bool async_output : {true, false}) {
    ScriptedExecutor executor;
    auto engine = EngineLoop::Create(EngineConfig{.async_output = async_output}, &executor,
                                     tokenizer_.get(), {});
    ASSERT_TRUE(engine.ok());
    std::atomic<int64_t> prefill = 0, decode = 0, scheduled = 0, steps = 0;
    (*engine)->SetStepObserver([&](const StepStats& step) {
      prefill += step.num_prefill_tokens;
      decode += step.num_decode_tokens;
      scheduled += step.num_scheduled_tokens;
      ++steps;
    });
    Collected c;
    AddAll(**engine, c, 3, /*max_tokens=*/5);
    { absl::MutexLock lock(&c.mu, absl::Condition(&c, &Collected::AllFinished)); }
    (*engine)->Stop();  // the observer has run for every applied step by now
    const int64_t prompt_len = static_cast<int64_t>(Request("x", 1).prompt_token_ids.size());
    EXPECT_EQ(prefill.load(), 3 * prompt_len);
    // The prefill samples the first token; each of the other 4 is one decode token.
    EXPECT_EQ(decode.load(), 3 * 4);
    EXPECT_EQ(scheduled.load(), prefill.load() + decode.load());
    EXPECT_GE(steps.load(), 5);
  }
}

TEST_F(EngineLoopTest, RejectsAConfigTheExecutorCannotServe) {
  ScriptedExecutor executor;
  auto engine = EngineLoop::Create(EngineConfig{.preemption_mode = PreemptionMode::kSwap},
                                   &executor, tokenizer_.get(), {});
  EXPECT_EQ(engine.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace pagoda
