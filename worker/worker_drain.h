// WorkerDrain: what pagoda-worker does between SIGTERM and exit, so that a rolling restart of the
// workers loses no request. The runtime reports DRAINING from the first moment (the router's
// health check then takes the replica out of rotation and moves its requests to the other
// replicas, as after a failure, but while this rank still answers), the steps the router still
// sends are applied, and the drain ends once no step has run for `quiet` (the router has let go),
// when the runtime is not serving a model at all, at `timeout`, or on a second signal.
//
//   runtime.StartDraining() is called by DrainWorker itself:
//   DrainEnd end = DrainWorker(runtime, {.timeout = absl::Seconds(30)}, *Clock::Real(),
//                              [](absl::Duration d) { return WaitForTerminationSignalFor(d) != 0;
//                              });
#pragma once

#include <functional>
#include <string_view>

#include "absl/time/time.h"
#include "common/clock.h"
#include "worker/worker_runtime.h"

namespace pagoda {

struct WorkerDrainOptions {
  absl::Duration timeout = absl::Seconds(30);  // the longest drain
  // No step for this long after the drain began: the router has taken the replica down. Four
  // times the router's default health interval (500 ms), so a busy replica is noticed first.
  absl::Duration quiet = absl::Seconds(2);
  absl::Duration poll = absl::Milliseconds(100);
};

enum class DrainEnd {
  kNotServing,  // no model (never initialized, shut down, or failed): nothing to hand over
  kQuiet,       // no step for `quiet`
  kTimeout,     // `timeout` passed with steps still coming
  kSignal,      // a second signal cut it short
};
std::string_view DrainEndName(DrainEnd end);

/// Marks `runtime` draining and waits as described above. `wait_for_signal(d)` blocks for at most
/// `d` and returns true when another termination signal arrived.
DrainEnd DrainWorker(WorkerRuntime& runtime, const WorkerDrainOptions& options, const Clock& clock,
                     const std::function<bool(absl::Duration)>& wait_for_signal);

}  // namespace pagoda
