#include "router/replica.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "grpcpp/client_context.h"
#include "proto/grpc_status.h"

namespace pagoda {
namespace {

constexpr absl::Duration kMinRestartBackoff = absl::Seconds(1);
constexpr absl::Duration kMaxRestartBackoff = absl::Seconds(30);
constexpr absl::Duration kHealthChannelRefresh = absl::Seconds(5);

}  // namespace

std::string_view ReplicaStateName(ReplicaState state) {
  switch (state) {
    case ReplicaState::kDown:
      return "down";
    case ReplicaState::kInitializing:
      return "initializing";
    case ReplicaState::kReady:
      return "ready";
  }
  return "unknown";
}

Replica::Replica(ReplicaOptions options) : options_(std::move(options)) {
  for (const std::string& address : options_.executor.worker_addresses) {
    health_stubs_.push_back(
        internal::Worker::NewStub(CreateWorkerChannel(address, options_.executor.tls)));
  }
  health_stubs_created_ = options_.clock->Now();
  supervisor_ = std::thread([this] { Supervise(); });
}

Replica::~Replica() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  supervisor_.join();
}

std::shared_ptr<EngineLoop> Replica::engine() const {
  absl::MutexLock lock(&mu_);
  return state_ == ReplicaState::kReady ? engine_ : nullptr;
}

ReplicaState Replica::state() const {
  absl::MutexLock lock(&mu_);
  return state_;
}

ReplicaStatus Replica::status() const {
  std::shared_ptr<EngineLoop> engine;
  ReplicaStatus status;
  {
    absl::MutexLock lock(&mu_);
    status.state = state_;
    status.generation = generation_;
    status.num_device_blocks = num_device_blocks_;
    status.num_restarts = std::max<int64_t>(0, num_starts_ - 1);
    status.last_error = last_error_;
    if (state_ == ReplicaState::kReady) engine = engine_;
  }
  if (engine != nullptr) status.stats = engine->stats();
  return status;
}

ReplicaSnapshot Replica::Snapshot() const {
  std::shared_ptr<EngineLoop> engine = this->engine();
  ReplicaSnapshot snapshot;
  if (engine == nullptr) return snapshot;
  const SchedulerStats stats = engine->stats();
  snapshot.ready = true;
  snapshot.num_running_requests = stats.num_running_requests;
  snapshot.num_waiting_requests = stats.num_waiting_requests + stats.num_swapped_requests;
  snapshot.kv_cache_usage = stats.kv_cache_usage;
  snapshot.num_running_seqs = stats.num_running_seqs;
  snapshot.queued_prefill_tokens = stats.num_queued_prefill_tokens;
  snapshot.num_in_flight_steps = stats.num_in_flight_steps;
  snapshot.num_in_flight_tokens = stats.num_in_flight_tokens;
  snapshot.step_token_budget = options_.engine.max_num_batched_tokens;
  snapshot.cached_prefix_tokens = [engine](absl::Span<const int32_t> token_ids) {
    return engine->NumCachedPrefixTokens(token_ids);
  };
  return snapshot;
}

void Replica::TakeDown(const std::string& reason) {
  absl::MutexLock lock(&mu_);
  if (state_ == ReplicaState::kReady && take_down_reason_.empty()) take_down_reason_ = reason;
}

bool Replica::WaitUntilReady(absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return state_ == ReplicaState::kReady || stopping_;
  };
  options_.clock->AwaitWithTimeout(mu_, absl::Condition(&ready), timeout);
  return state_ == ReplicaState::kReady;
}

void Replica::Supervise() {
  absl::Time next_start = absl::InfinitePast();
  absl::Duration backoff = kMinRestartBackoff;
  while (true) {
    std::string reason;
    ReplicaState state;
    {
      absl::MutexLock lock(&mu_);
      auto wake = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !take_down_reason_.empty();
      };
      options_.clock->AwaitWithTimeout(mu_, absl::Condition(&wake), options_.health_interval);
      if (stopping_) break;
      reason = std::move(take_down_reason_);
      take_down_reason_.clear();
      state = state_;
    }
    if (state == ReplicaState::kReady) {
      if (reason.empty()) {
        std::shared_ptr<EngineLoop> engine = this->engine();
        if (engine != nullptr && !engine->status().ok()) {
          reason = std::string(engine->status().message());
        }
      }
      if (reason.empty()) {
        if (absl::Status health = CheckWorkersHealthy(/*require_ready=*/true); !health.ok()) {
          reason = std::string(health.message());
        }
      }
      if (!reason.empty()) {
        Stop(reason);
        next_start = options_.clock->Now();  // try again as soon as the workers answer
        backoff = kMinRestartBackoff;
      }
      continue;
    }
    if (options_.clock->Now() < next_start) continue;
    if (absl::Status health = CheckWorkersHealthy(/*require_ready=*/false); !health.ok()) {
      NoteDown(std::string(health.message()));
      MaybeRefreshHealthChannels();
      continue;
    }
    if (Start().ok()) {
      backoff = kMinRestartBackoff;
    } else {
      // A model that cannot load fails every time: do not reload it twice a second.
      next_start = options_.clock->Now() + backoff;
      backoff = std::min(backoff * 2, kMaxRestartBackoff);
    }
  }
  Stop("the router is shutting down");
}

absl::Status Replica::CheckWorkersHealthy(bool require_ready) const {
  uint64_t generation = 0;
  {
    absl::MutexLock lock(&mu_);
    generation = generation_;
  }
  for (size_t rank = 0; rank < health_stubs_.size(); ++rank) {
    grpc::ClientContext context;
    // gRPC keeps its deadlines on the real clock.
    context.set_deadline(absl::ToChronoTime(absl::Now() + options_.health_timeout));
    internal::HealthResponse response;
    const grpc::Status status =
        health_stubs_[rank]->Health(&context, internal::HealthRequest(), &response);
    const std::string& address = options_.executor.worker_addresses[rank];
    if (!status.ok()) {
      return absl::UnavailableError(
          absl::StrCat("worker rank ", rank, " (", address,
                       ") does not answer: ", WorkerCallError(status, options_.executor.tls)));
    }
    // A draining rank is going away: out of rotation now, and no Init until it is replaced.
    if (response.state() == internal::HealthResponse::DRAINING) {
      return absl::UnavailableError(
          absl::StrCat("worker rank ", rank, " (", address, ") is draining (it was told to stop)"));
    }
    if (require_ready && (response.state() != internal::HealthResponse::READY ||
                          response.generation() != generation)) {
      return absl::UnavailableError(
          absl::StrCat("worker rank ", rank, " (", address, ") is ",
                       internal::HealthResponse::State_Name(response.state()), " at generation ",
                       response.generation(), " (expected READY at ", generation, ")",
                       response.error().empty() ? "" : ": ", response.error()));
    }
  }
  return absl::OkStatus();
}

void Replica::NoteDown(const std::string& reason) {
  absl::MutexLock lock(&mu_);
  if (reason == unhealthy_reason_) return;
  unhealthy_reason_ = reason;
  PAGODA_LOG(warn, "replica {}: cannot initialize yet: {}", options_.index, reason);
  // Why it went down (a failed step, a draining rank, an Init error) stays the last error.
  if (last_error_.empty() || last_error_is_health_) {
    last_error_ = reason;
    last_error_is_health_ = true;
  }
}

void Replica::MaybeRefreshHealthChannels() {
  const absl::Time now = options_.clock->Now();
  if (now - health_stubs_created_ < kHealthChannelRefresh) return;
  // The RemoteExecutor of the next Start() makes its own channels, which resolve afresh too.
  for (size_t rank = 0; rank < health_stubs_.size(); ++rank) {
    health_stubs_[rank] = internal::Worker::NewStub(
        CreateWorkerChannel(options_.executor.worker_addresses[rank], options_.executor.tls));
  }
  health_stubs_created_ = now;
}

absl::Status Replica::Start() {
  uint64_t generation = 0;
  {
    absl::MutexLock lock(&mu_);
    state_ = ReplicaState::kInitializing;
    // Unique across router restarts too, so a worker never mistakes an old plan for a new one:
    // real wall-clock time, whatever the replica's clock.
    generation_ = std::max<uint64_t>(generation_ + 1, absl::ToUnixMicros(absl::Now()));
    generation = generation_;
  }
  PAGODA_LOG(info, "replica {}: initializing {} worker(s), generation {}", options_.index,
             options_.executor.worker_addresses.size(), generation);
  absl::StatusOr<std::unique_ptr<EngineLoop>> engine;
  absl::StatusOr<std::unique_ptr<Executor>> executor =
      options_.make_executor ? options_.make_executor(generation)
                             : absl::StatusOr<std::unique_ptr<Executor>>(
                                   RemoteExecutor::Create(options_.executor, generation));
  int64_t num_device_blocks = 0;
  if (executor.ok()) {
    num_device_blocks = (*executor)->info().num_device_blocks;
    engine = EngineLoop::Create(options_.engine, std::move(*executor), options_.tokenizer,
                                options_.eos_token_ids);
    if (engine.ok() && options_.on_step) {
      (*engine)->SetStepObserver([on_step = options_.on_step, index = options_.index](
                                     const StepStats& step) { on_step(index, step); });
    }
  } else {
    engine = executor.status();
  }
  if (engine.ok() && options_.on_ready) options_.on_ready(options_.index);
  absl::MutexLock lock(&mu_);
  if (!engine.ok()) {
    state_ = ReplicaState::kDown;
    last_error_ = std::string(engine.status().message());
    last_error_is_health_ = false;
    PAGODA_LOG(error, "replica {}: {}", options_.index, last_error_);
    return engine.status();
  }
  engine_ = std::shared_ptr<EngineLoop>(std::move(*engine));
  num_device_blocks_ = num_device_blocks;
  state_ = ReplicaState::kReady;
  unhealthy_reason_.clear();
  ++num_starts_;
  PAGODA_LOG(info, "replica {}: ready ({} KV blocks)", options_.index, num_device_blocks);
  return absl::OkStatus();
}

void Replica::Stop(const std::string& reason) {
  std::shared_ptr<EngineLoop> engine;
  {
    absl::MutexLock lock(&mu_);
    engine = std::move(engine_);
    engine_ = nullptr;
    if (engine != nullptr || state_ != ReplicaState::kDown) {
      last_error_ = reason;
      last_error_is_health_ = false;
    }
    state_ = ReplicaState::kDown;
  }
  if (engine == nullptr) return;
  PAGODA_LOG(warn, "replica {}: out of rotation: {}", options_.index, reason);
  // Its requests end with an error delta; their sessions move them to another replica.
  engine->Stop();
}

}  // namespace pagoda
