// ComputeThread: one thread that runs the work handed to it, one piece at a time. A pagoda-worker
// loads its model and applies its steps on one: its gRPC service calls WorkerRuntime::Init and
// Execute on whichever of its threads, and every thread that entered the kernels' parallel
// regions would keep an OpenMP team of its own, which stops them all from spinning between
// regions (kernels/cpu_threads.h: a decode step half as fast on 2 cores).
//
//   ComputeThread compute;
//   absl::StatusOr<StepResult> result = compute.Run([&] { return steps->Apply(plan); });
#pragma once

#include <cstdint>
#include <optional>
#include <thread>
#include <type_traits>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/synchronization/mutex.h"

namespace pagoda {

class ComputeThread {
 public:
  ComputeThread();
  /// Joins the thread; no Run may be in progress.
  ~ComputeThread();
  ComputeThread(const ComputeThread&) = delete;
  ComputeThread& operator=(const ComputeThread&) = delete;

  /// Runs `fn` on the thread and returns what it returns. Thread-safe: concurrent callers take
  /// turns (in no promised order); `fn` must not call Run itself.
  template <typename F>
  std::invoke_result_t<F&> Run(F fn) {
    using Result = std::invoke_result_t<F&>;
    if constexpr (std::is_void_v<Result>) {
      RunTask(fn);
    } else {
      std::optional<Result> result;
      RunTask([&] { result.emplace(fn()); });
      return std::move(*result);
    }
  }

 private:
  void RunTask(absl::FunctionRef<void()> task);
  void Loop();

  absl::Mutex mu_;
  std::optional<absl::FunctionRef<void()>> task_ ABSL_GUARDED_BY(mu_);  // handed over, not done
  uint64_t num_started_ ABSL_GUARDED_BY(mu_) = 0;                       // tasks handed over
  uint64_t num_finished_ ABSL_GUARDED_BY(mu_) = 0;                      // tasks done
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // last: starts after the state above
};

}  // namespace pagoda
