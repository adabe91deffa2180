// Clock: where a component that decides by time (health-check periods, restart backoff,
// timeouts, latency metrics) reads the time and waits. Production code uses Clock::Real(); a
// test passes a FakeClock (tests/testing/fake_clock.h) through the component's options and
// drives the decision by advancing it, instead of sleeping.
//
// Deadlines handed to gRPC (a ClientContext's deadline) and ids that must stay unique across
// processes (a replica's generation) are wall-clock matters and stay on absl::Now().
//
//   struct ReplicaOptions { ...; const Clock* clock = Clock::Real(); };
//   const absl::Time next_start = clock->Now() + backoff;
//   clock->AwaitWithTimeout(mu_, absl::Condition(&wake), health_interval);  // mu_ held
#pragma once

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace pagoda {

class Clock {
 public:
  virtual ~Clock() = default;

  virtual absl::Time Now() const = 0;
  /// Blocks the calling thread until `duration` of this clock's time has passed.
  virtual void SleepFor(absl::Duration duration) const = 0;
  /// With `mu` held: waits until `condition` holds or this clock reaches `deadline`, like
  /// absl::Mutex::AwaitWithDeadline (the condition is evaluated with `mu` held, and again
  /// whenever another thread releases `mu`). Returns whether the condition holds; `mu` is held
  /// again on return.
  virtual bool AwaitWithDeadline(absl::Mutex& mu, const absl::Condition& condition,
                                 absl::Time deadline) const = 0;

  bool AwaitWithTimeout(absl::Mutex& mu, const absl::Condition& condition,
                        absl::Duration timeout) const {
    return AwaitWithDeadline(mu, condition, Now() + timeout);
  }
  /// Now() in seconds since the Unix epoch: the unit of EngineRequest::arrival_time_s and of
  /// the latencies the router's metrics observe.
  double NowUnixSeconds() const { return absl::ToDoubleSeconds(Now() - absl::UnixEpoch()); }

  /// The process's clock (absl::Now, absl::SleepFor); never destroyed.
  static Clock* Real();
};

}  // namespace pagoda
