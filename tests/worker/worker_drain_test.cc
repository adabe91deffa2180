// DrainWorker on a real WorkerRuntime (stories260K) with a FakeClock: DRAINING is reported at
// once, Init is refused from then on, steps keep being applied and keep the drain going, and the
// drain ends when no step came for `quiet`, at `timeout`, on a second signal, or at once when no
// model is served.
#include "worker/worker_drain.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/stories260k.h"
#include "worker/worker_runtime.h"

namespace pagoda {
namespace {

using testing::FakeClock;
using ::testing::HasSubstr;
using testing::Stories260KDir;

constexpr int32_t kBlockSize = 4;

WorkerInitConfig Config(uint64_t generation) {
  return {.generation = generation,
          .replica = "replica-0",
          .model_dir = Stories260KDir(),
          .block_size = kBlockSize,
          .num_device_blocks = 64};
}

// A 4-token prompt with room for 60 more tokens, then one decode step per call.
StepPlan Prefill() {
  SamplingParams params;
  params.temperature = 0;
  params.ignore_eos = true;
  params.max_tokens = 60;
  std::vector<int32_t> blocks;
  for (int32_t b = 0; b < 16; ++b) blocks.push_back(b);
  return {.step_id = 1,
          .new_sequences = {{.seq_id = "a",
                             .token_ids = {1, 403, 407, 261},
                             .num_prompt_tokens = 4,
                             .num_scheduled_tokens = 4,
                             .block_ids = blocks,
                             .sampling_params = params}}};
}

StepPlan Decode(int64_t step_id) {
  return {.step_id = step_id, .cached_sequences = {{.seq_id = "a", .num_scheduled_tokens = 1}}};
}

class WorkerDrainTest : public ::testing::Test {
 protected:
  // Advances the fake clock by the time asked for; never a second signal.
  bool WaitAdvancing(absl::Duration timeout) {
    clock_.Advance(timeout);
    ++waits_;
    return false;
  }

  FakeClock clock_;
  WorkerRuntime runtime_{{.clock = &clock_}};
  int waits_ = 0;
  const WorkerDrainOptions options_{.timeout = absl::Seconds(5),
                                    .quiet = absl::Milliseconds(500),
                                    .poll = absl::Milliseconds(100)};
};

TEST_F(WorkerDrainTest, EndsAtOnceWithoutAModelAndRefusesInitFromThen) {
  const DrainEnd end =
      DrainWorker(runtime_, options_, clock_, [&](absl::Duration d) { return WaitAdvancing(d); });
  EXPECT_EQ(end, DrainEnd::kNotServing);
  EXPECT_EQ(waits_, 0);
  EXPECT_TRUE(runtime_.Health().draining);
  const absl::StatusOr<WorkerInitResult> init = runtime_.Init(Config(1));
  EXPECT_EQ(init.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(init.status().message(), HasSubstr("draining"));
}

TEST_F(WorkerDrainTest, EndsWhenNoStepCameForTheQuietPeriod) {
  ASSERT_TRUE(runtime_.Init(Config(1)).ok());
  const absl::Time start = clock_.Now();
  const DrainEnd end =
      DrainWorker(runtime_, options_, clock_, [&](absl::Duration d) { return WaitAdvancing(d); });
  EXPECT_EQ(end, DrainEnd::kQuiet);
  EXPECT_EQ(clock_.Now() - start, options_.quiet);
  const WorkerHealth health = runtime_.Health();
  EXPECT_TRUE(health.draining);
  EXPECT_EQ(health.state, WorkerState::kReady);  // still able to apply a late step
}

TEST_F(WorkerDrainTest, StepsKeepItDrainingUntilTheTimeoutAndAreApplied) {
  ASSERT_TRUE(runtime_.Init(Config(1)).ok());
  ASSERT_TRUE(runtime_.Execute({.generation = 1, .sequence = 0}, Prefill()).ok());
  uint64_t sequence = 1;
  int64_t tokens = 0;
  const absl::Time start = clock_.Now();
  const DrainEnd end = DrainWorker(runtime_, options_, clock_, [&](absl::Duration d) {
    WaitAdvancing(d);
    // The router still sends this replica's steps (until it notices DRAINING).
    absl::StatusOr<AppliedStep> step = runtime_.Execute({.generation = 1, .sequence = sequence},
                                                        Decode(static_cast<int64_t>(sequence) + 1));
    EXPECT_TRUE(step.ok()) << step.status();
    if (step.ok()) tokens += static_cast<int64_t>(step->result.outputs.at(0).token_ids.size());
    ++sequence;
    return false;
  });
  EXPECT_EQ(end, DrainEnd::kTimeout);
  EXPECT_EQ(clock_.Now() - start, options_.timeout);
  EXPECT_EQ(tokens, waits_);
}

TEST_F(WorkerDrainTest, ASecondSignalCutsItShort) {
  ASSERT_TRUE(runtime_.Init(Config(1)).ok());
  const DrainEnd end = DrainWorker(runtime_, options_, clock_, [&](absl::Duration d) {
    WaitAdvancing(d);
    return waits_ == 2;
  });
  EXPECT_EQ(end, DrainEnd::kSignal);
  EXPECT_EQ(waits_, 2);
}

TEST_F(WorkerDrainTest, ARouterShutdownEndsIt) {
  ASSERT_TRUE(runtime_.Init(Config(1)).ok());
  const DrainEnd end = DrainWorker(runtime_, options_, clock_, [&](absl::Duration d) {
    WaitAdvancing(d);
    runtime_.Shutdown();  // the router's Shutdown RPC
    return false;
  });
  EXPECT_EQ(end, DrainEnd::kNotServing);
}

}  // namespace
}  // namespace pagoda
