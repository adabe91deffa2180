// Replica: one tensor-parallel group of pagoda-worker processes as the router sees it — its
// RemoteExecutor and EngineLoop while it is ready, and a supervision thread that keeps it so:
//
//   down ──(every rank answers Health)──> initializing ──(Init ok on every rank)──> ready
//    ^                                          │ Init failed                         │
//    └──────────────────────────────────────────┴─────────────────────────────────────┘
//         a rank fails its health check, a step fails (the engine reports it), TakeDown()
//
// Taking a replica down stops its engine: every request it held ends with an error delta, which
// the request's session answers by moving it to another replica (router/request_session.h).
// A replica whose workers answer again is re-initialized with a new generation and rejoins.
//
//   Replica replica(options);            // starts supervising; initializes in the background
//   std::shared_ptr<EngineLoop> engine = replica.engine();  // null unless ready
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/tokenizer/tokenizer.h"
#include "engine/engine_config.h"
#include "engine/engine_loop.h"
#include "router/global_scheduler.h"
#include "router/remote_executor.h"

namespace pagoda {

enum class ReplicaState { kDown, kInitializing, kReady };
std::string_view ReplicaStateName(ReplicaState state);

struct ReplicaOptions {
  int32_t index = 0;
  RemoteExecutorOptions executor;  // worker addresses and the Init template
  /// Builds the replica's executor for a generation; empty: a RemoteExecutor over
  /// `executor`'s workers. Benchmarks plug in a SimulatedExecutor (and list no workers, so
  /// there is nothing to health-check).
  std::function<absl::StatusOr<std::unique_ptr<Executor>>(uint64_t generation)> make_executor;
  EngineConfig engine;
  const Tokenizer* tokenizer = nullptr;  // borrowed
  std::vector<int32_t> eos_token_ids;
  absl::Duration health_interval = absl::Milliseconds(500);
  absl::Duration health_timeout = absl::Seconds(2);
  /// Called (on the supervisor thread) each time the replica becomes ready with an empty cache.
  std::function<void(int32_t index)> on_ready;
  /// Each engine's step observer (EngineLoop::SetStepObserver), on its loop thread.
  std::function<void(int32_t index, const StepStats& step)> on_step;
  /// Paces the health checks and the restart backoff, and times WaitUntilReady (borrowed).
  const Clock* clock = Clock::Real();
};

/// What the router reports about a replica (GetServerInfo, metrics).
struct ReplicaStatus {
  ReplicaState state = ReplicaState::kDown;
  uint64_t generation = 0;
  int64_t num_device_blocks = 0;
  int64_t num_restarts = 0;  // re-initializations after the first
  std::string last_error;
  SchedulerStats stats;  // of the current engine; zero when not ready
};

class Replica {
 public:
  explicit Replica(ReplicaOptions options);
  /// Stops supervising and the engine (its requests end with "router shutting down").
  ~Replica();
  Replica(const Replica&) = delete;
  Replica& operator=(const Replica&) = delete;

  int32_t index() const { return options_.index; }
  const std::vector<std::string>& worker_addresses() const {
    return options_.executor.worker_addresses;
  }

  /// The running engine; null unless ready. Callers keep the pointer only for one call.
  std::shared_ptr<EngineLoop> engine() const;
  ReplicaState state() const;
  ReplicaStatus status() const;
  /// For the GlobalScheduler: readiness, load and the exact prefix-cache query.
  ReplicaSnapshot Snapshot() const;

  /// Takes the replica out of rotation now (e.g. a step failure seen by a session); the
  /// supervisor stops its engine and re-initializes it once its workers answer.
  void TakeDown(const std::string& reason);

  /// Blocks until the replica is ready or `timeout` passes on its clock; true when ready.
  bool WaitUntilReady(absl::Duration timeout) const;

 private:
  void Supervise();
  absl::Status CheckWorkersHealthy(bool require_ready) const;
  // Why a down replica cannot start yet (its workers do not answer, e.g. a failed TLS handshake):
  // logged when it changes, and its status's last_error unless that says why it went down.
  void NoteDown(const std::string& reason);
  // New health channels, at most every kHealthChannelRefresh, while the workers do not answer.
  void MaybeRefreshHealthChannels();
  absl::Status Start();
  void Stop(const std::string& reason);

  const ReplicaOptions options_;
  // Supervisor thread only. Workers are addressed by name (a pod's DNS name); a fresh channel
  // resolves the name at once, where a channel whose resolution kept failing (a deleted pod's
  // name vanishes until the pod is rescheduled) retries on a backoff of up to two minutes.
  std::vector<std::unique_ptr<internal::Worker::Stub>> health_stubs_;
  absl::Time health_stubs_created_;

  mutable absl::Mutex mu_;
  ReplicaState state_ ABSL_GUARDED_BY(mu_) = ReplicaState::kDown;
  std::shared_ptr<EngineLoop> engine_ ABSL_GUARDED_BY(mu_);
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t num_device_blocks_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t num_starts_ ABSL_GUARDED_BY(mu_) = 0;
  std::string last_error_ ABSL_GUARDED_BY(mu_);
  bool last_error_is_health_ ABSL_GUARDED_BY(mu_) = false;  // last_error_ came from NoteDown
  std::string unhealthy_reason_ ABSL_GUARDED_BY(mu_);       // NoteDown's last, until ready
  std::string take_down_reason_ ABSL_GUARDED_BY(mu_);  // set by TakeDown, read by the supervisor
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  std::thread supervisor_;  // last member
};

}  // namespace pagoda
