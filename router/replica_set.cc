#include "router/replica_set.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "router/router_metrics.h"

namespace pagoda {
namespace {

constexpr char kShuttingDown[] =
    "the server is shutting down and takes no new requests; retry on another instance";

}  // namespace

ReplicaSet::ReplicaSet(ReplicaSetOptions options)
    : options_(std::move(options)),
      scheduler_(options_.scheduler, static_cast<int32_t>(options_.replicas.size())) {
  for (ReplicaOptions replica : options_.replicas) {
    // A (re)started replica holds nothing: forget what was routed to it.
    replica.on_ready = [this](int32_t index) { scheduler_.Reset(index); };
    replica.clock = options_.clock;
    replica.on_step = [this](int32_t index, const StepStats& step) {
      // prefix_aware converts the work ahead to time at the replica's measured step cost.
      scheduler_.ObserveStep(index, step.num_prefill_tokens, step.num_decode_tokens,
                             step.duration_s);
      if (options_.metrics != nullptr) options_.metrics->ObserveStep(index, step);
    };
    replicas_.push_back(std::make_unique<Replica>(std::move(replica)));
  }
}

ReplicaSet::~ReplicaSet() { replicas_.clear(); }

bool ReplicaSet::AnyReady() const {
  return admitting() &&
         std::any_of(replicas_.begin(), replicas_.end(), [](const std::unique_ptr<Replica>& r) {
           return r->state() == ReplicaState::kReady;
         });
}

bool ReplicaSet::WaitUntilReady(int32_t count, absl::Duration timeout) const {
  const Clock& clock = *options_.clock;
  const absl::Time deadline = clock.Now() + timeout;
  while (true) {
    const int32_t ready = static_cast<int32_t>(std::count_if(
        replicas_.begin(), replicas_.end(),
        [](const std::unique_ptr<Replica>& r) { return r->state() == ReplicaState::kReady; }));
    if (ready >= count) return true;
    if (clock.Now() >= deadline) return false;
    clock.SleepFor(absl::Milliseconds(20));
  }
}

void ReplicaSet::StopAdmitting() {
  absl::MutexLock lock(&mu_);
  admitting_ = false;
}

bool ReplicaSet::admitting() const {
  absl::MutexLock lock(&mu_);
  return admitting_;
}

int64_t ReplicaSet::num_live_requests() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(live_ids_.size());
}

int64_t ReplicaSet::num_failovers() const {
  absl::MutexLock lock(&mu_);
  return num_failovers_;
}

void ReplicaSet::CountFailover() {
  if (options_.metrics != nullptr) options_.metrics->CountFailover();
  absl::MutexLock lock(&mu_);
  ++num_failovers_;
}

absl::StatusOr<std::unique_ptr<RequestSession>> ReplicaSet::Submit(EngineRequest request) {
  {
    absl::MutexLock lock(&mu_);
    if (!admitting_) {
      return absl::UnavailableError(kShuttingDown);
    }
    if (!live_ids_.insert(request.request_id).second) {
      return absl::AlreadyExistsError(
          absl::StrCat("request_id: a request with id '", request.request_id, "' is running"));
    }
  }
  auto inbox = std::make_shared<SessionInbox>();
  absl::StatusOr<int32_t> replica = Place(request, inbox, /*attempt=*/0);
  if (absl::IsUnavailable(replica.status()) && options_.admission_wait > absl::ZeroDuration()) {
    // Every replica is down or starting (a worker restarting, the model still loading): hold the
    // request for a while rather than fail it, as a failover does.
    const Clock& clock = *options_.clock;
    const absl::Time start = clock.Now();
    const absl::Time give_up = start + options_.admission_wait;
    while (absl::IsUnavailable(replica.status()) && clock.Now() < give_up && admitting()) {
      clock.SleepFor(std::min(kPlacementRetry, give_up - clock.Now()));
      replica = Place(request, inbox, /*attempt=*/0);
    }
    if (replica.ok()) {
      PAGODA_LOG(info, "request {}: placed on replica {} after waiting {} for a ready one",
                 request.request_id, *replica, absl::FormatDuration(clock.Now() - start));
    } else if (absl::IsUnavailable(replica.status())) {
      replica = absl::UnavailableError(admitting()
                                           ? absl::StrCat(replica.status().message(), " (waited ",
                                                          absl::FormatDuration(clock.Now() - start),
                                                          ", --admission-wait-s)")
                                           : std::string(kShuttingDown));
    }
  }
  if (!replica.ok()) {
    Release(request.request_id);
    return replica.status();
  }
  return std::unique_ptr<RequestSession>(
      new RequestSession(this, std::move(request), *replica, std::move(inbox)));
}

absl::StatusOr<int32_t> ReplicaSet::Place(const EngineRequest& request,
                                          const std::shared_ptr<SessionInbox>& inbox,
                                          int32_t attempt) {
  // Route on everything the replica will prefill: a resumed request's outputs too.
  std::vector<int32_t> routed = request.prompt_token_ids;
  routed.insert(routed.end(), request.resumed_output_token_ids.begin(),
                request.resumed_output_token_ids.end());
  std::vector<int32_t> exclude;
  absl::Status queue_full;
  while (true) {
    std::vector<ReplicaSnapshot> snapshots;
    snapshots.reserve(replicas_.size());
    for (const std::unique_ptr<Replica>& replica : replicas_) {
      snapshots.push_back(replica->Snapshot());
    }
    absl::StatusOr<RoutingDecision> decision = scheduler_.Decide(routed, snapshots, exclude);
    if (!decision.ok()) {
      if (!queue_full.ok()) return queue_full;
      return absl::UnavailableError("no replica is ready to serve the request");
    }
    const int32_t picked = decision->replica;
    std::shared_ptr<EngineLoop> engine = replicas_[picked]->engine();
    absl::Status added = engine == nullptr
                             ? absl::FailedPreconditionError("replica went down")
                             : engine->AddRequest(request, inbox->CallbackFor(inbox, attempt));
    if (added.ok()) {
      if (options_.metrics != nullptr) {
        options_.metrics->CountRoutingDecision(picked, decision->reason);
      }
      return picked;
    }
    if (absl::IsFailedPrecondition(added)) {
      // Failed or stopped between the snapshot and now: take the next best.
      exclude.push_back(picked);
      continue;
    }
    if (absl::IsResourceExhausted(added)) {
      queue_full = absl::ResourceExhaustedError(
          absl::StrCat("the request queue is full (", added.message(), ")"));
      exclude.push_back(picked);
      continue;
    }
    return added;
  }
}

void ReplicaSet::Release(const std::string& request_id) {
  absl::MutexLock lock(&mu_);
  live_ids_.erase(request_id);
}

}  // namespace pagoda
