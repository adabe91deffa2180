#include "router/frontend/health_reporter.h"

#include <utility>

namespace pagoda {

HealthReporter::HealthReporter(std::function<bool()> ready,
                               std::function<void(bool serving)> report, absl::Duration period)
    : ready_(std::move(ready)),
      report_(std::move(report)),
      period_(period),
      thread_([this] { Loop(); }) {}

HealthReporter::~HealthReporter() { Stop(); }

void HealthReporter::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void HealthReporter::Loop() {
  bool serving = false;
  report_(serving);
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    mu_.Unlock();
    const bool ready = ready_();
    if (ready != serving) {
      report_(ready);
      serving = ready;
    }
    mu_.Lock();
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), period_);
  }
}

}  // namespace pagoda
