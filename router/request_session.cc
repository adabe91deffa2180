#include "router/request_session.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "router/replica_set.h"
#include "router/router_metrics.h"

namespace pagoda {
namespace {}  // namespace

OutputCallback SessionInbox::CallbackFor(std::shared_ptr<SessionInbox> self, int32_t attempt) {
  return [self = std::move(self), attempt](const RequestOutput& delta) {
    absl::MutexLock lock(&self->mu);
    self->deltas.emplace_back(attempt, delta);
  };
}

RequestSession::RequestSession(ReplicaSet* owner, EngineRequest request, int32_t replica,
                               std::shared_ptr<SessionInbox> inbox)
    : owner_(owner), request_(std::move(request)), inbox_(std::move(inbox)), replica_(replica) {
  const size_t n = static_cast<size_t>(std::max(request_.params.n, 1));
  delivered_token_ids_.resize(n);
  delivered_logprob_.resize(n);
}

RequestSession::~RequestSession() {
  Cancel();
  {
    // A request abandoned before its last delta (client cancel) still counts, as an abort.
    absl::MutexLock lock(&mu_);
    ObserveFinished(FinishReasonName(FinishReason::kAbort), std::nullopt);
  }
  owner_->Release(request_.request_id);
}

int32_t RequestSession::replica() const {
  absl::MutexLock lock(&mu_);
  return replica_;
}

int32_t RequestSession::num_failovers() const {
  absl::MutexLock lock(&mu_);
  return num_failovers_;
}

void RequestSession::Cancel() {
  int32_t replica = -1;
  {
    absl::MutexLock lock(&mu_);
    if (done_ || cancelled_) return;
    cancelled_ = true;
    replica = replica_;
  }
  if (replica < 0) return;
  std::shared_ptr<EngineLoop> engine = owner_->replica(replica).engine();
  if (engine != nullptr) engine->Abort(request_.request_id);
}

void RequestSession::Record(const RequestOutput& delta) {
  for (const CompletionOutput& out : delta.outputs) {
    if (out.index < 0 || out.index >= static_cast<int32_t>(delivered_token_ids_.size())) continue;
    std::vector<int32_t>& ids = delivered_token_ids_[out.index];
    ids.insert(ids.end(), out.token_ids.begin(), out.token_ids.end());
    if (out.cumulative_logprob.has_value()) delivered_logprob_[out.index] = *out.cumulative_logprob;
  }
}

std::optional<RequestOutput> RequestSession::Next(absl::Duration timeout) {
  const Clock& clock = owner_->clock();
  const absl::Time deadline = clock.Now() + timeout;
  absl::MutexLock lock(&mu_);
  while (!done_) {
    std::optional<std::pair<int32_t, RequestOutput>> item;
    {
      absl::MutexLock inbox_lock(&inbox_->mu);
      auto has_delta = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(inbox_->mu) {
        return !inbox_->deltas.empty();
      };
      clock.AwaitWithDeadline(inbox_->mu, absl::Condition(&has_delta), deadline);
      if (inbox_->deltas.empty()) return std::nullopt;
      item = std::move(inbox_->deltas.front());
      inbox_->deltas.pop_front();
    }
    if (item->first != attempt_) continue;  // from a replica the request already left
    RequestOutput& delta = item->second;
    ObserveQueueTime(delta);
    if (delta.finished && !delta.error.empty() && !cancelled_) {
      // The replica failed under the request: move it instead of ending the stream.
      std::optional<RequestOutput> final_delta = Failover(std::move(delta));
      if (!final_delta.has_value()) continue;
      done_ = true;
      ObserveDelivered(*final_delta);
      return final_delta;
    }
    Record(delta);
    if (delta.finished) done_ = true;
    ObserveDelivered(delta);
    if (collect_whole_) {
      MergeRequestOutput(collected_, delta);
      if (!delta.finished) continue;
      return std::exchange(collected_, RequestOutput{});
    }
    return std::move(delta);
  }
  return std::nullopt;
}

void RequestSession::CollectWhole() {
  absl::MutexLock lock(&mu_);
  collect_whole_ = true;
}

void RequestSession::ObserveQueueTime(const RequestOutput& delta) {
  RouterMetrics* metrics = owner_->metrics();
  if (metrics == nullptr || queue_time_observed_ || !delta.first_scheduled_time_s.has_value()) {
    return;
  }
  // The first time any replica scheduled it: a failover's second wait is not queue time.
  queue_time_observed_ = true;
  metrics->ObserveQueueTime(replica_, *delta.first_scheduled_time_s - request_.arrival_time_s);
}

void RequestSession::ObserveDelivered(const RequestOutput& delta) {
  RouterMetrics* metrics = owner_->metrics();
  if (metrics == nullptr) return;
  const bool has_tokens =
      std::any_of(delta.outputs.begin(), delta.outputs.end(),
                  [](const CompletionOutput& out) { return !out.token_ids.empty(); });
  // The clock of EngineRequest::arrival_time_s (the Frontend's).
  const double now_s = owner_->clock().NowUnixSeconds();
  if (has_tokens) {
    if (!last_token_time_s_.has_value()) {
      metrics->ObserveTimeToFirstToken(replica_, now_s - request_.arrival_time_s);
    } else {
      metrics->ObserveInterTokenLatency(replica_, now_s - *last_token_time_s_);
    }
    last_token_time_s_ = now_s;
  }
  if (!delta.finished) return;
  std::string_view reason = FinishReasonName(FinishReason::kAbort);
  if (delta.error.empty()) {
    for (const CompletionOutput& out : delta.outputs) {
      if (out.finish_reason.has_value()) reason = FinishReasonName(*out.finish_reason);
    }
  }
  ObserveFinished(reason, delta.usage);
}

void RequestSession::ObserveFinished(std::string_view finished_reason,
                                     const std::optional<Usage>& usage) {
  RouterMetrics* metrics = owner_->metrics();
  if (metrics == nullptr || finish_observed_) return;
  finish_observed_ = true;
  // The final delta's usage counts the prompt once and every output, across failovers. A
  // request that ends without it (failed, abandoned) counts what it was given, and its prompt
  // once it was scheduled somewhere.
  FinishedRequestStats stats{
      .replica = replica_,
      .finished_reason = finished_reason,
      .e2e_latency_s = owner_->clock().NowUnixSeconds() - request_.arrival_time_s};
  if (usage.has_value()) {
    stats.num_prompt_tokens = usage->prompt_tokens;
    stats.num_generation_tokens = usage->completion_tokens;
  } else {
    if (queue_time_observed_) {
      stats.num_prompt_tokens = static_cast<int64_t>(request_.prompt_token_ids.size());
    }
    for (const std::vector<int32_t>& ids : delivered_token_ids_) {
      stats.num_generation_tokens += static_cast<int64_t>(ids.size());
    }
  }
  metrics->ObserveFinished(stats);
}

absl::StatusOr<EngineRequest> RequestSession::FailoverRequest(const std::string& error) const {
  EngineRequest moved = request_;
  bool delivered = false;
  for (const std::vector<int32_t>& ids : delivered_token_ids_) delivered |= !ids.empty();
  const bool several = request_.params.n > 1 || request_.params.beam_search();
  // Nothing given to the client yet (none streamed, or all kept until the end): start over.
  if (!delivered || (several && collect_whole_)) return moved;
  if (several) {
    return absl::UnavailableError(absl::StrCat(
        error,
        " (a request with n > 1 or beam search cannot continue on another replica once "
        "it has streamed output)"));
  }
  moved.resumed_output_token_ids = delivered_token_ids_[0];
  moved.resumed_cumulative_logprob = delivered_logprob_[0];
  return moved;
}

std::optional<RequestOutput> RequestSession::Failover(RequestOutput failed) {
  const int32_t failed_replica = replica_;
  owner_->replica(failed_replica).TakeDown(failed.error);
  absl::StatusOr<EngineRequest> moved = FailoverRequest(failed.error);
  if (moved.ok() && moved->resumed_output_token_ids.empty()) {
    // Starting over: what the failed attempt produced goes.
    collected_ = RequestOutput{};
    for (std::vector<int32_t>& ids : delivered_token_ids_) ids.clear();
    std::fill(delivered_logprob_.begin(), delivered_logprob_.end(), 0.0);
  }
  absl::Status placed = moved.status();
  if (moved.ok()) {
    const Clock& clock = owner_->clock();
    const absl::Time give_up = clock.Now() + owner_->options_.failover_wait;
    while (true) {
      ++attempt_;
      absl::StatusOr<int32_t> replica = owner_->Place(*moved, inbox_, attempt_);
      if (replica.ok()) {
        replica_ = *replica;
        ++num_failovers_;
        owner_->CountFailover();
        PAGODA_LOG(warn, "request {}: replica {} failed ({}); moved to replica {} after {} tokens",
                   request_.request_id, failed_replica, failed.error, *replica,
                   moved->resumed_output_token_ids.size());
        return std::nullopt;
      }
      placed = replica.status();
      const bool transient = absl::IsUnavailable(placed) || absl::IsResourceExhausted(placed);
      if (!transient || clock.Now() >= give_up || cancelled_) break;
      mu_.Unlock();  // let Cancel() in while waiting for a replica
      clock.SleepFor(ReplicaSet::kPlacementRetry);
      mu_.Lock();
      if (cancelled_) break;
    }
  }
  PAGODA_LOG(error, "request {}: replica {} failed and the request could not move: {}",
             request_.request_id, failed_replica, std::string(placed.message()));
  RequestOutput out;
  out.request_id = request_.request_id;
  out.finished = true;
  out.error = absl::StrCat(failed.error, "; ", placed.message());
  return out;
}

}  // namespace pagoda
