// ReplicaSet: the router's replicas and its GlobalScheduler — where an admitted request is
// placed, and placed again when its replica fails (router/request_session.h).
//
//   ReplicaSet replicas({.replicas = {r0, r1}, .scheduler = {.policy = kPrefixAware, ...}});
//   ASSIGN_OR_RETURN(std::unique_ptr<RequestSession> session, replicas.Submit(request));
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/clock.h"
#include "router/global_scheduler.h"
#include "router/replica.h"
#include "router/request_session.h"

namespace pagoda {

class RouterMetrics;

struct ReplicaSetOptions {
  std::vector<ReplicaOptions> replicas;
  GlobalSchedulerOptions scheduler;
  /// How long a request whose replica failed waits for another to be ready.
  absl::Duration failover_wait = absl::Seconds(60);
  /// How long a new request waits for a ready replica while none is (all restarting, or still
  /// loading) before Submit answers Unavailable; zero: at once.
  absl::Duration admission_wait = absl::Seconds(30);
  /// Where requests, steps and failovers are counted (borrowed; must outlive the set); null:
  /// no metrics.
  RouterMetrics* metrics = nullptr;
  /// The router's one clock (borrowed): every replica's (it replaces theirs), the sessions'
  /// waits and failover deadline, the latencies they report, and the Frontend's arrival times.
  const Clock* clock = Clock::Real();
};

class ReplicaSet {
 public:
  explicit ReplicaSet(ReplicaSetOptions options);
  ~ReplicaSet();  // stops every replica (live requests end with an error)

  /// Places a validated request (id and seed resolved) on the replica the global scheduler
  /// picks, waiting up to options.admission_wait while no replica is ready (on the caller's
  /// thread). AlreadyExists: a live request has its id; Unavailable: no replica became ready in
  /// time, or the set stopped admitting;
  /// ResourceExhausted: the waiting queue of every ready replica is full.
  absl::StatusOr<std::unique_ptr<RequestSession>> Submit(EngineRequest request);

  int32_t num_replicas() const { return static_cast<int32_t>(replicas_.size()); }
  const Replica& replica(int32_t index) const { return *replicas_[index]; }
  Replica& replica(int32_t index) { return *replicas_[index]; }
  /// False once StopAdmitting() was called.
  bool AnyReady() const;
  /// Graceful drain: from now on Submit answers Unavailable and AnyReady() false (readiness
  /// probes fail, so load balancers stop sending); live requests run to their end.
  void StopAdmitting();
  bool admitting() const;
  /// Requests submitted whose sessions have not ended yet.
  int64_t num_live_requests() const;
  /// True once at least `count` replicas are ready, false after `timeout` on the set's clock.
  bool WaitUntilReady(int32_t count, absl::Duration timeout) const;
  const GlobalScheduler& scheduler() const { return scheduler_; }
  int64_t num_failovers() const;
  RouterMetrics* metrics() const { return options_.metrics; }
  const Clock& clock() const { return *options_.clock; }

 private:
  friend class RequestSession;

  // How often a request waiting for a ready replica (new, or moving off a failed one) looks again.
  static constexpr absl::Duration kPlacementRetry = absl::Milliseconds(200);

  // Adds `request` to a replica; its deltas go to `inbox` tagged with `attempt`.
  absl::StatusOr<int32_t> Place(const EngineRequest& request,
                                const std::shared_ptr<SessionInbox>& inbox, int32_t attempt);
  void Release(const std::string& request_id);
  void CountFailover();

  const ReplicaSetOptions options_;
  std::vector<std::unique_ptr<Replica>> replicas_;
  GlobalScheduler scheduler_;

  mutable absl::Mutex mu_;
  absl::flat_hash_set<std::string> live_ids_ ABSL_GUARDED_BY(mu_);
  bool admitting_ ABSL_GUARDED_BY(mu_) = true;
  int64_t num_failovers_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace pagoda
