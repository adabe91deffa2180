#include "engine/simulated_executor.h"

#include <cstdint>
#include <string>
#include <vector>

#include "engine/scheduler.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagoda {
namespace {

constexpr int32_t kEos = 2;

SimulatedExecutor MakeExecutor() {
  return SimulatedExecutor(
      {.info = {.num_device_blocks = 64, .block_size = 4, .max_model_len = 128, .vocab_size = 50},
       .eos_token_ids = {kEos}});
}

NewSequence Seq(std::string id, int64_t prompt_len, int32_t max_tokens, int64_t num_blocks,
                uint64_t seed = 7) {
  NewSequence seq{.seq_id = std::move(id), .num_scheduled_tokens = prompt_len, .seed = seed};
  for (int64_t i = 0; i < prompt_len; ++i) seq.token_ids.push_back(3 + static_cast<int32_t>(i));
  seq.num_prompt_tokens = prompt_len;
  for (int64_t b = 0; b < num_blocks; ++b) seq.block_ids.push_back(static_cast<int32_t>(b));
  seq.sampling_params.max_tokens = max_tokens;
  return seq;
}

TEST(SimulatedExecutor, MultiStepSamplesOneTokenPerStep) {
  SimulatedExecutor executor = MakeExecutor();
  StepPlan plan{.step_id = 0, .new_sequences = {Seq("a", 5, 100, 4)}, .num_steps = 3};
  absl::StatusOr<StepResult> result = executor.Apply(plan);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->outputs.size(), 1u);
  EXPECT_EQ(result->outputs[0].seq_id, "a");
  EXPECT_EQ(result->outputs[0].token_ids.size(), 3u);
  // 5 prompt tokens + 2 fed-back samples computed; the third sample is pending.
  EXPECT_EQ(executor.num_computed_tokens(), 7);
  for (int32_t token : result->outputs[0].token_ids) EXPECT_NE(token, kEos);

  StepPlan next{.step_id = 1,
                .cached_sequences = {{.seq_id = "a", .num_scheduled_tokens = 1}},
                .num_steps = 4};
  result = executor.Apply(next);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->outputs[0].token_ids.size(), 4u);
}

TEST(SimulatedExecutor, StopsAtMaxTokensAndBlockRoom) {
  SimulatedExecutor executor = MakeExecutor();
  StepPlan plan{.step_id = 0,
                .new_sequences = {Seq("short", 5, 2, 4), Seq("cramped", 7, 100, 2)},
                .num_steps = 8};
  absl::StatusOr<StepResult> result = executor.Apply(plan);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->outputs.size(), 2u);
  EXPECT_EQ(result->outputs[0].token_ids.size(), 2u);  // max_tokens
  // 2 blocks of 4 hold 8 positions: the 7-token prompt, then 1 decode, then no room.
  EXPECT_EQ(result->outputs[1].token_ids.size(), 2u);
}

TEST(SimulatedExecutor, IsDeterministicPerSeedAndStep) {
  SimulatedExecutor a = MakeExecutor();
  SimulatedExecutor b = MakeExecutor();
  StepPlan plan{.new_sequences = {Seq("x", 5, 10, 8, 1), Seq("y", 3, 10, 8, 2)}, .num_steps = 6};
  absl::StatusOr<StepResult> ra = a.Apply(plan);
  absl::StatusOr<StepResult> rb = b.Apply(plan);
  ASSERT_TRUE(ra.ok() && rb.ok());
  EXPECT_EQ(ra->outputs[0].token_ids, rb->outputs[0].token_ids);
  EXPECT_NE(ra->outputs[0].token_ids, ra->outputs[1].token_ids);
}

TEST(SimulatedExecutor, RejectsUnknownSequence) {
  SimulatedExecutor executor = MakeExecutor();
  StepPlan plan{.cached_sequences = {{.seq_id = "ghost", .num_scheduled_tokens = 1}}};
  EXPECT_EQ(executor.Apply(plan).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SimulatedExecutor, DrivesTheSchedulerToCompletion) {
  SimulatedExecutor executor = MakeExecutor();
  Scheduler scheduler(EngineConfig{}, executor.info(), executor.eos_token_ids());
  for (int i = 0; i < 4; ++i) {
    EngineRequest r{.request_id = std::to_string(i), .prompt_token_ids = {5, 6, 7}, .seed = 1};
    r.params.max_tokens = 6 + i;
    r.params.n = i % 2 + 1;
    ASSERT_TRUE(scheduler.AddRequest(std::move(r)).ok());
  }
  int64_t tokens = 0;
  while (scheduler.HasUnfinishedRequests()) {
    std::optional<ScheduledStep> step = scheduler.Schedule();
    ASSERT_TRUE(step.has_value());
    absl::StatusOr<StepResult> result = executor.Submit(std::move(step->plan)).get();
    ASSERT_TRUE(result.ok()) << result.status();
    for (const SequenceUpdate& u : scheduler.ApplyResult(*result)) tokens += u.new_token_ids.size();
  }
  EXPECT_EQ(tokens, 6 + 2 * 7 + 8 + 2 * 9);  // no EOS drawn: every sample runs to max_tokens
  EXPECT_EQ(scheduler.kv_cache().NumFreeBlocks(), 64);
}

}  // namespace
}  // namespace pagoda
