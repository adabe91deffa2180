// ProgressBar: a one-line progress bar for a benchmark run, redrawn in place ("\r") on a
// terminal stream at most every 100 ms and once at the end. Thread-safe; a disabled bar draws
// nothing.
//
//   ProgressBar bar(/*total=*/200, stderr, /*enabled=*/isatty(STDERR_FILENO));
//   bar.Advance(/*failed=*/false);   // from any thread, once per finished request
//   bar.Finish();
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace pagoda {

class ProgressBar {
 public:
  ProgressBar(int64_t total, FILE* out, bool enabled);

  void Advance(bool failed);
  /// Draws the final state and ends the line.
  void Finish();

 private:
  void DrawLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  using Clock = std::chrono::steady_clock;
  const int64_t total_;
  FILE* const out_;
  const bool enabled_;
  const Clock::time_point start_;

  absl::Mutex mu_;
  int64_t done_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t failed_ ABSL_GUARDED_BY(mu_) = 0;
  Clock::time_point last_draw_ ABSL_GUARDED_BY(mu_);
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace pagoda
