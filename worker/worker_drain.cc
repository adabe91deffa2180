#include "worker/worker_drain.h"

#include <algorithm>

namespace pagoda {

std::string_view DrainEndName(DrainEnd end) {
  switch (end) {
    case DrainEnd::kNotServing:
      return "not serving a model";
    case DrainEnd::kQuiet:
      return "no step came";
    case DrainEnd::kTimeout:
      return "drain timeout";
    case DrainEnd::kSignal:
      return "second signal";
  }
  return "?";
}

DrainEnd DrainWorker(WorkerRuntime& runtime, const WorkerDrainOptions& options, const Clock& clock,
                     const std::function<bool(absl::Duration)>& wait_for_signal) {
  runtime.StartDraining();
  const absl::Time start = clock.Now();
  const absl::Time deadline = start + options.timeout;
  while (true) {
    const WorkerHealth health = runtime.Health();
    if (health.state != WorkerState::kReady) return DrainEnd::kNotServing;
    const absl::Time now = clock.Now();
    if (!health.step_in_progress && now - std::max(start, health.last_step_end) >= options.quiet) {
      return DrainEnd::kQuiet;
    }
    if (now >= deadline) return DrainEnd::kTimeout;
    if (wait_for_signal(std::min(options.poll, deadline - now))) return DrainEnd::kSignal;
  }
}

}  // namespace pagoda
