// HealthReporter: keeps a serving status in step with a readiness check. Its thread reports
// "not serving" first, then asks `ready` every `period` and reports each change, until Stop().
// pagoda-router uses it to set grpc.health.v1's status of pagoda.v1.Generation: SERVING while a
// replica is ready.
//
//   HealthReporter reporter([&] { return replicas.AnyReady(); },
//                           [&](bool serving) { health->SetServingStatus(kService, serving); });
//   ... serve ...
//   reporter.Stop();  // before the health service shuts down
#pragma once

#include <functional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace pagoda {

class HealthReporter {
 public:
  /// `ready` and `report` run on the reporter's thread.
  HealthReporter(std::function<bool()> ready, std::function<void(bool serving)> report,
                 absl::Duration period = absl::Milliseconds(100));
  ~HealthReporter();  // Stop()

  HealthReporter(const HealthReporter&) = delete;
  HealthReporter& operator=(const HealthReporter&) = delete;

  /// Ends the thread (at once, not after a period); nothing is reported afterwards. Idempotent.
  void Stop();

 private:
  void Loop();

  const std::function<bool()> ready_;
  const std::function<void(bool)> report_;
  const absl::Duration period_;

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  std::thread thread_;  // last member: starts after everything it uses
};

}  // namespace pagoda
