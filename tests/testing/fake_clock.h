// FakeClock: a Clock (common/clock.h) whose time moves only when the test calls Advance(), so a
// test drives a time-based decision (a health-check period, a restart backoff, a timeout)
// without sleeping. Threads that SleepFor() or AwaitWithDeadline() on it stay blocked until the
// fake time reaches their end (or, for an await, the condition holds).
//
// To know that another thread has acted on an Advance() — it woke, decided, and waits again —
// a test counts the waits it started:
//
//   FakeClock clock;
//   Replica replica({..., .clock = &clock});
//   ASSERT_TRUE(clock.BlockUntilWaits(1));     // the supervisor waits for its first tick
//   int64_t waits = clock.num_waits();
//   clock.Advance(absl::Seconds(1));
//   ASSERT_TRUE(clock.BlockUntilWaits(waits + 1));  // it ran that tick and waits again
#pragma once

#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace pagoda::testing {

class FakeClock final : public Clock {
 public:
  /// Starts at `start` (a fixed, arbitrary time by default: tests must not depend on it).
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1'700'000'000));

  absl::Time Now() const override;
  void SleepFor(absl::Duration duration) const override;
  /// Notices a deadline that Advance() passed within about a millisecond of real time.
  bool AwaitWithDeadline(absl::Mutex& mu, const absl::Condition& condition,
                         absl::Time deadline) const override;

  /// Moves the time forward by `duration` (>= 0) and wakes the waits it ends.
  void Advance(absl::Duration duration);

  /// SleepFor and AwaitWithDeadline calls begun so far, on any thread.
  int64_t num_waits() const;
  /// Blocks until num_waits() >= `count`; false after `real_timeout` of real time (a test that
  /// sees false has a thread that never got back to waiting).
  bool BlockUntilWaits(int64_t count, absl::Duration real_timeout = absl::Seconds(60)) const;

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
  mutable int64_t num_waits_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace pagoda::testing
