// RequestSession: one client request as the router's frontends see it, from admission to its
// last delta, across replicas. The engine's callback (on a replica's loop thread) only queues
// deltas; the frontend's thread takes them with Next() and writes them to the client.
//
// Failover: a delta that ends the request with an engine error (its replica failed or was taken
// down) is not passed on. Next() moves the request to another replica instead, resumed from
// prompt + the tokens already delivered with the same seed (EngineRequest::
// resumed_output_token_ids), so the client's stream continues without a gap or a duplicate.
// Requests with n > 1 or beam search restart from scratch when nothing was delivered yet and
// fail with the error otherwise. A client that takes the whole result at the end (CollectWhole:
// non-streamed HTTP, gRPC Complete) has been given nothing before it, so its request always
// moves: n = 1 resumed as above, n > 1 and beam search started over (same seed).
//
//   ASSIGN_OR_RETURN(std::unique_ptr<RequestSession> session, replicas.Submit(request));
//   while (auto delta = session->Next(absl::Milliseconds(100))) { ... write ... }
//   session->Cancel();   // client went away
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "engine/output_processor.h"
#include "engine/request.h"

namespace pagoda {

class ReplicaSet;

/// Where an engine's callback leaves a session's deltas (shared by both, so a late callback
/// after the session ended is harmless). Deltas carry the placement attempt they belong to.
struct SessionInbox {
  absl::Mutex mu;
  std::deque<std::pair<int32_t, RequestOutput>> deltas ABSL_GUARDED_BY(mu);

  OutputCallback CallbackFor(std::shared_ptr<SessionInbox> self, int32_t attempt);
};

class RequestSession {
 public:
  ~RequestSession();  // aborts the request if it has not finished
  RequestSession(const RequestSession&) = delete;
  RequestSession& operator=(const RequestSession&) = delete;

  const std::string& request_id() const { return request_.request_id; }
  const EngineRequest& request() const { return request_; }
  int32_t replica() const;
  /// Times the request moved to another replica.
  int32_t num_failovers() const;

  /// The next delta for the client, waiting up to `timeout` on the ReplicaSet's clock (nullopt
  /// on timeout). After the delta with finished = true (which carries `error` when the request
  /// failed and could not be moved) it returns nullopt at once.
  std::optional<RequestOutput> Next(absl::Duration timeout);

  /// For a client that gets the whole result at the end: from now on Next() merges the deltas
  /// here (MergeRequestOutput) and returns only the finished total, or the error. Call it before
  /// the first Next().
  void CollectWhole();

  /// Aborts the request (client cancel or deadline): its blocks are freed on every rank.
  void Cancel();

 private:
  friend class ReplicaSet;

  RequestSession(ReplicaSet* owner, EngineRequest request, int32_t replica,
                 std::shared_ptr<SessionInbox> inbox);

  // Builds the request to place elsewhere after a failure, or an error when it cannot move.
  absl::StatusOr<EngineRequest> FailoverRequest(const std::string& error) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves the request after `failed` (an error delta); the error delta to give the client when
  // it cannot move.
  std::optional<RequestOutput> Failover(RequestOutput failed) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Record(const RequestOutput& delta) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Metrics (when the ReplicaSet has them): the queue time of a delta from any attempt, and
  // latencies and token counts of a delta given to the client.
  void ObserveQueueTime(const RequestOutput& delta) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ObserveDelivered(const RequestOutput& delta) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ObserveFinished(std::string_view finished_reason, const std::optional<Usage>& usage)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  ReplicaSet* const owner_;
  const EngineRequest request_;
  std::shared_ptr<SessionInbox> inbox_;  // shared with the engine callback

  mutable absl::Mutex mu_;
  int32_t replica_ ABSL_GUARDED_BY(mu_) = -1;
  int32_t attempt_ ABSL_GUARDED_BY(mu_) = 0;  // placements so far - 1
  int32_t num_failovers_ ABSL_GUARDED_BY(mu_) = 0;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool collect_whole_ ABSL_GUARDED_BY(mu_) = false;
  RequestOutput collected_ ABSL_GUARDED_BY(mu_);  // with collect_whole_: the deltas so far
  // What the client has been given, per completion index: the tokens a resumed request starts
  // from.
  std::vector<std::vector<int32_t>> delivered_token_ids_ ABSL_GUARDED_BY(mu_);
  std::vector<double> delivered_logprob_ ABSL_GUARDED_BY(mu_);
  // Metrics state: when the last delta with tokens was given (Unix seconds).
  std::optional<double> last_token_time_s_ ABSL_GUARDED_BY(mu_);
  bool queue_time_observed_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_observed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace pagoda
