#include "worker/compute_thread.h"

namespace pagoda {

ComputeThread::ComputeThread() : thread_([this] { Loop(); }) {}

ComputeThread::~ComputeThread() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
}

void ComputeThread::RunTask(absl::FunctionRef<void()> task) {
  absl::MutexLock lock(&mu_);
  // Wait for the slot, hand the task over, then wait until the thread has finished it.
  mu_.Await(absl::Condition(
      +[](std::optional<absl::FunctionRef<void()>>* slot) { return !slot->has_value(); }, &task_));
  task_.emplace(task);
  const uint64_t ticket = ++num_started_;
  const auto done = [this, ticket]()
                        ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return num_finished_ >= ticket; };
  mu_.Await(absl::Condition(&done));
}

void ComputeThread::Loop() {
  absl::MutexLock lock(&mu_);
  while (true) {
    const auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return task_.has_value() || stop_;
    };
    mu_.Await(absl::Condition(&ready));
    if (!task_.has_value()) return;  // stopped with nothing handed over
    const absl::FunctionRef<void()> task = *task_;
    mu_.Unlock();
    task();
    mu_.Lock();
    task_.reset();
    ++num_finished_;
  }
}

}  // namespace pagoda
