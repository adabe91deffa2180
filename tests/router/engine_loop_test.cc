// Checks EngineLoop against a scripted executor: outputs stream to callbacks with one final
// delta per request, an executor error fails every request with a clear error and closes the
// engine, Stop() ends running requests, admission errors come back from AddRequest.
#include "router/engine_loop.h"

#include <atomic>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/llama2c_tokenizer.h"
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
  explicit ScriptedExecutor(int64_t fail_at = -1) : fail_at_(fail_at) {}

  const ExecutorInfo& info() const override { return info_; }

  std::future<absl::StatusOr<StepResult>> Submit(StepPlan plan) override {
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
  void AddAll(EngineLoop& engine, Collected& c, int count, int32_t max_tokens) {
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
      ASSERT_TRUE(engine.AddRequest(Request("r" + std::to_string(i), max_tokens), callback).ok());
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
  AddAll(**engine, c, 4, /*max_tokens=*/100);
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

TEST_F(EngineLoopTest, RejectsAConfigTheExecutorCannotServe) {
  ScriptedExecutor executor;
  auto engine = EngineLoop::Create(EngineConfig{.preemption_mode = PreemptionMode::kSwap},
                                   &executor, tokenizer_.get(), {});
  EXPECT_EQ(engine.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace pagoda
