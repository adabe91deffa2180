// Checks the Replica's supervision decisions on a FakeClock: when it health-checks and starts,
// how its restart backoff doubles after each failed start, and that a replica taken down is
// restarted at the next health tick rather than after a backoff. No test sleeps: each advances
// the fake time and waits until the supervisor has acted on it and waits again.
#include "router/replica.h"

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "common/tokenizer/tokenizer.h"
#include "engine/simulated_executor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/stories260k.h"

namespace pagoda {
namespace {

using testing::FakeClock;

constexpr absl::Duration kHealthInterval = absl::Milliseconds(500);

// make_executor that fails until `succeed_from`-th call (1-based) and counts its calls.
class ExecutorFactory {
 public:
  explicit ExecutorFactory(int64_t succeed_from) : succeed_from_(succeed_from) {}

  absl::StatusOr<std::unique_ptr<Executor>> Make() {
    absl::MutexLock lock(&mu_);
    if (++calls_ < succeed_from_) return absl::InternalError("the model does not load");
    return std::make_unique<SimulatedExecutor>(SimulatedExecutorOptions{
        .info = {
            .num_device_blocks = 64, .block_size = 16, .max_model_len = 256, .vocab_size = 512}});
  }
  int64_t calls() const {
    absl::MutexLock lock(&mu_);
    return calls_;
  }

 private:
  const int64_t succeed_from_;
  mutable absl::Mutex mu_;
  int64_t calls_ ABSL_GUARDED_BY(mu_) = 0;
};

class ReplicaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto tokenizer = Tokenizer::FromDirectory(testing::Stories260KDir());
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    tokenizer_ = std::move(*tokenizer);
  }

  // A replica with no workers to health-check (so only the clock and the executor decide),
  // supervised on clock_; its supervisor waits for its first tick when this returns.
  std::unique_ptr<Replica> Start(ExecutorFactory& factory) {
    auto replica = std::make_unique<Replica>(
        ReplicaOptions{.make_executor = [&factory](uint64_t) { return factory.Make(); },
                       .engine = {.max_model_len = 256},
                       .tokenizer = tokenizer_.get(),
                       .health_interval = kHealthInterval,
                       .clock = &clock_});
    EXPECT_TRUE(clock_.BlockUntilWaits(1));
    return replica;
  }

  // Moves the fake time and returns once the supervisor has run the tick(s) it caused and
  // waits again.
  void Advance(absl::Duration duration) {
    const int64_t waits = clock_.num_waits();
    clock_.Advance(duration);
    ASSERT_TRUE(clock_.BlockUntilWaits(waits + 1));
  }

  FakeClock clock_;
  std::unique_ptr<Tokenizer> tokenizer_;
};

TEST_F(ReplicaTest, StartsAtTheFirstHealthTick) {
  ExecutorFactory factory(/*succeed_from=*/1);
  std::unique_ptr<Replica> replica = Start(factory);
  EXPECT_EQ(factory.calls(), 0);
  EXPECT_EQ(replica->state(), ReplicaState::kDown);
  Advance(kHealthInterval);
  EXPECT_EQ(factory.calls(), 1);
  EXPECT_EQ(replica->state(), ReplicaState::kReady);
  EXPECT_NE(replica->engine(), nullptr);
  EXPECT_EQ(replica->status().num_restarts, 0);
}

TEST_F(ReplicaTest, WorkersThatDoNotAnswerAreTheLastErrorAndNoStartIsTried) {
  // Nothing listens on port 1: the health check before any Init fails (as a TLS handshake that
  // fails does), and the status says which worker and why.
  ExecutorFactory factory(/*succeed_from=*/1);
  Replica replica(ReplicaOptions{.executor = {.worker_addresses = {"127.0.0.1:1"}},
                                 .make_executor = [&factory](uint64_t) { return factory.Make(); },
                                 .engine = {.max_model_len = 256},
                                 .tokenizer = tokenizer_.get(),
                                 .health_interval = kHealthInterval,
                                 .clock = &clock_});
  ASSERT_TRUE(clock_.BlockUntilWaits(1));
  Advance(kHealthInterval);
  EXPECT_EQ(factory.calls(), 0);
  EXPECT_EQ(replica.state(), ReplicaState::kDown);
  EXPECT_THAT(replica.status().last_error,
              ::testing::StartsWith("worker rank 0 (127.0.0.1:1) does not answer: "));
}

TEST_F(ReplicaTest, FailedStartsBackOffExponentially) {
  ExecutorFactory factory(/*succeed_from=*/4);
  std::unique_ptr<Replica> replica = Start(factory);
  Advance(kHealthInterval);  // t = 0.5 s: the first start fails; next one at 1.5 s
  EXPECT_EQ(factory.calls(), 1);
  EXPECT_EQ(replica->state(), ReplicaState::kDown);
  EXPECT_EQ(replica->status().last_error, "the model does not load");

  // Backoff 1 s, then 2 s: ticks inside it do not start the replica.
  Advance(kHealthInterval);  // 1.0 s
  EXPECT_EQ(factory.calls(), 1);
  Advance(kHealthInterval);  // 1.5 s: second start fails; next one at 3.5 s
  EXPECT_EQ(factory.calls(), 2);
  for (int i = 0; i < 3; ++i) Advance(kHealthInterval);  // 2.0, 2.5, 3.0 s
  EXPECT_EQ(factory.calls(), 2);
  Advance(kHealthInterval);  // 3.5 s: third start fails; next one at 7.5 s
  EXPECT_EQ(factory.calls(), 3);
  for (int i = 0; i < 7; ++i) Advance(kHealthInterval);  // 4.0 .. 7.0 s
  EXPECT_EQ(factory.calls(), 3);
  EXPECT_EQ(replica->state(), ReplicaState::kDown);
  Advance(kHealthInterval);  // 7.5 s: the fourth start succeeds
  EXPECT_EQ(factory.calls(), 4);
  EXPECT_EQ(replica->state(), ReplicaState::kReady);
}

TEST_F(ReplicaTest, ATakenDownReplicaRestartsAtTheNextTickWithoutBackoff) {
  ExecutorFactory factory(/*succeed_from=*/1);
  std::unique_ptr<Replica> replica = Start(factory);
  Advance(kHealthInterval);
  ASSERT_EQ(replica->state(), ReplicaState::kReady);

  // TakeDown wakes the supervisor at once, without any time passing.
  const int64_t waits = clock_.num_waits();
  replica->TakeDown("a step failed");
  ASSERT_TRUE(clock_.BlockUntilWaits(waits + 1));
  EXPECT_EQ(replica->state(), ReplicaState::kDown);
  EXPECT_EQ(replica->status().last_error, "a step failed");
  EXPECT_EQ(factory.calls(), 1);

  Advance(kHealthInterval);
  EXPECT_EQ(factory.calls(), 2);
  EXPECT_EQ(replica->state(), ReplicaState::kReady);
  EXPECT_EQ(replica->status().num_restarts, 1);
}

}  // namespace
}  // namespace pagoda
