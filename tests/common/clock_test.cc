// Checks the Clock contract on both implementations: the real clock's waits end at once when
// the condition already holds or the deadline has passed, and the fake clock's time moves only
// by Advance(), which ends the sleeps and awaits it reaches — no test here waits on real time.
#include "common/clock.h"

#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"

namespace pagoda {
namespace {

using ::pagoda::testing::FakeClock;

TEST(RealClock, AwaitReturnsWhetherTheConditionHolds) {
  const Clock* clock = Clock::Real();
  absl::Mutex mu;
  bool flag = true;
  absl::MutexLock lock(&mu);
  EXPECT_TRUE(clock->AwaitWithTimeout(mu, absl::Condition(&flag), absl::Hours(1)));
  flag = false;
  EXPECT_FALSE(clock->AwaitWithDeadline(mu, absl::Condition(&flag), absl::InfinitePast()));
  EXPECT_GT(clock->NowUnixSeconds(), 1.6e9);
}

TEST(FakeClock, TimeMovesOnlyByAdvance) {
  FakeClock clock(absl::FromUnixSeconds(100));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(100));
  EXPECT_EQ(clock.NowUnixSeconds(), 100.0);
  clock.Advance(absl::Milliseconds(1500));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(100) + absl::Milliseconds(1500));
}

TEST(FakeClock, SleepEndsWhenAdvancePassesItsEnd) {
  FakeClock clock;
  absl::Mutex mu;
  bool woke = false;
  std::thread sleeper([&] {
    clock.SleepFor(absl::Seconds(10));
    absl::MutexLock lock(&mu);
    woke = true;
  });
  ASSERT_TRUE(clock.BlockUntilWaits(1));
  clock.Advance(absl::Seconds(9));
  {
    absl::MutexLock lock(&mu);
    EXPECT_FALSE(woke);  // not decisive on its own (the sleeper may be slow), never wrong
  }
  clock.Advance(absl::Seconds(1));
  sleeper.join();
  EXPECT_TRUE(woke);
}

TEST(FakeClock, AwaitEndsOnTheConditionOrOnTheFakeDeadline) {
  FakeClock clock;
  absl::Mutex mu;
  bool flag = false;
  bool result = true;
  std::thread waiter([&] {
    absl::MutexLock lock(&mu);
    result = clock.AwaitWithTimeout(mu, absl::Condition(&flag), absl::Minutes(5));
  });
  ASSERT_TRUE(clock.BlockUntilWaits(1));
  clock.Advance(absl::Minutes(5));
  waiter.join();
  EXPECT_FALSE(result);

  waiter = std::thread([&] {
    absl::MutexLock lock(&mu);
    result = clock.AwaitWithTimeout(mu, absl::Condition(&flag), absl::Minutes(5));
  });
  ASSERT_TRUE(clock.BlockUntilWaits(2));
  {
    absl::MutexLock lock(&mu);
    flag = true;
  }
  waiter.join();
  EXPECT_TRUE(result);
  EXPECT_EQ(clock.num_waits(), 2);
}

}  // namespace
}  // namespace pagoda
