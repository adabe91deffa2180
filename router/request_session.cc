#include "router/request_session.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "router/replica_set.h"

namespace pagoda {
namespace {

constexpr absl::Duration kPlacementRetry = absl::Milliseconds(200);

}  // namespace

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
  const absl::Time deadline = absl::Now() + timeout;
  absl::MutexLock lock(&mu_);
  while (!done_) {
    std::optional<std::pair<int32_t, RequestOutput>> item;
    {
      absl::MutexLock inbox_lock(&inbox_->mu);
      auto has_delta = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(inbox_->mu) {
        return !inbox_->deltas.empty();
      };
      inbox_->mu.AwaitWithDeadline(absl::Condition(&has_delta), deadline);
      if (inbox_->deltas.empty()) return std::nullopt;
      item = std::move(inbox_->deltas.front());
      inbox_->deltas.pop_front();
    }
    if (item->first != attempt_) continue;  // from a replica the request already left
    RequestOutput& delta = item->second;
    if (delta.finished && !delta.error.empty() && !cancelled_) {
      // The replica failed under the request: move it instead of ending the stream.
      std::optional<RequestOutput> final_delta = Failover(std::move(delta));
      if (!final_delta.has_value()) continue;
      done_ = true;
      return final_delta;
    }
    Record(delta);
    if (delta.finished) done_ = true;
    return std::move(delta);
  }
  return std::nullopt;
}

absl::StatusOr<EngineRequest> RequestSession::FailoverRequest(const std::string& error) const {
  EngineRequest moved = request_;
  bool delivered = false;
  for (const std::vector<int32_t>& ids : delivered_token_ids_) delivered |= !ids.empty();
  if (!delivered) return moved;  // nothing streamed yet: start over
  if (request_.params.n > 1 || request_.params.beam_search()) {
    return absl::UnavailableError(absl::StrCat(
        error, " (a request with n > 1 or beam search cannot continue on another replica once "
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
  absl::Status placed = moved.status();
  if (moved.ok()) {
    const absl::Time give_up = absl::Now() + owner_->options_.failover_wait;
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
      if (!transient || absl::Now() >= give_up || cancelled_) break;
      mu_.Unlock();  // let Cancel() in while waiting for a replica
      absl::SleepFor(kPlacementRetry);
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
