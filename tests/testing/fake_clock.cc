#include "tests/testing/fake_clock.h"

namespace pagoda::testing {
namespace {

// How often an await re-reads the fake time. The caller's mutex wakes it at once when its
// condition may have changed; only a deadline passed by Advance() waits for this slice.
constexpr absl::Duration kDeadlinePoll = absl::Milliseconds(1);

}  // namespace

FakeClock::FakeClock(absl::Time start) : now_(start) {}

absl::Time FakeClock::Now() const {
  absl::MutexLock lock(&mu_);
  return now_;
}

void FakeClock::SleepFor(absl::Duration duration) const {
  absl::MutexLock lock(&mu_);
  ++num_waits_;
  const absl::Time end = now_ + duration;
  auto reached = [this, end]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return now_ >= end; };
  mu_.Await(absl::Condition(&reached));
}

bool FakeClock::AwaitWithDeadline(absl::Mutex& mu, const absl::Condition& condition,
                                  absl::Time deadline) const {
  {
    absl::MutexLock lock(&mu_);
    ++num_waits_;
  }
  while (!condition.Eval()) {
    if (Now() >= deadline) return false;
    mu.AwaitWithTimeout(condition, kDeadlinePoll);
  }
  return true;
}

void FakeClock::Advance(absl::Duration duration) {
  absl::MutexLock lock(&mu_);
  now_ += duration;
}

int64_t FakeClock::num_waits() const {
  absl::MutexLock lock(&mu_);
  return num_waits_;
}

bool FakeClock::BlockUntilWaits(int64_t count, absl::Duration real_timeout) const {
  absl::MutexLock lock(&mu_);
  auto enough = [this, count]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return num_waits_ >= count; };
  return mu_.AwaitWithTimeout(absl::Condition(&enough), real_timeout);
}

}  // namespace pagoda::testing
