#include "engine/engine_loop.h"

#include <algorithm>
#include <span>
#include <utility>
#include <variant>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace pagoda {

absl::StatusOr<std::unique_ptr<EngineLoop>> EngineLoop::Create(const EngineConfig& config,
                                                               Executor* executor,
                                                               const Tokenizer* tokenizer,
                                                               std::vector<int32_t> eos_token_ids) {
  if (executor == nullptr || tokenizer == nullptr) {
    return absl::InvalidArgumentError("EngineLoop needs an executor and a tokenizer");
  }
  RETURN_IF_ERROR(config.Validate(executor->info()));
  return std::unique_ptr<EngineLoop>(
      new EngineLoop(config, executor, nullptr, tokenizer, std::move(eos_token_ids)));
}

absl::StatusOr<std::unique_ptr<EngineLoop>> EngineLoop::Create(const EngineConfig& config,
                                                               std::unique_ptr<Executor> executor,
                                                               const Tokenizer* tokenizer,
                                                               std::vector<int32_t> eos_token_ids) {
  if (executor == nullptr || tokenizer == nullptr) {
    return absl::InvalidArgumentError("EngineLoop needs an executor and a tokenizer");
  }
  RETURN_IF_ERROR(config.Validate(executor->info()));
  Executor* borrowed = executor.get();
  return std::unique_ptr<EngineLoop>(
      new EngineLoop(config, borrowed, std::move(executor), tokenizer, std::move(eos_token_ids)));
}

EngineLoop::EngineLoop(const EngineConfig& config, Executor* executor,
                       std::unique_ptr<Executor> owned, const Tokenizer* tokenizer,
                       std::vector<int32_t> eos_token_ids)
    : config_(config),
      owned_executor_(std::move(owned)),
      executor_(executor),
      block_size_(executor->info().block_size),
      processor_(tokenizer),
      scheduler_(std::make_unique<Scheduler>(config, executor->info(), std::move(eos_token_ids))),
      thread_([this] { Run(); }) {}

EngineLoop::~EngineLoop() { Stop(); }

void EngineLoop::Stop() {
  absl::MutexLock join_lock(&join_mu_);
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    ++generation_;
  }
  if (thread_.joinable()) thread_.join();
}

absl::Status EngineLoop::AddRequest(EngineRequest request, OutputCallback callback) {
  // The id is free again once its final delta is on its way, so the callback may reuse it.
  // Callbacks run on the loop thread, which owns first_scheduled_.
  OutputCallback deliver = [this, id = request.request_id, callback = std::move(callback),
                            first = true](const RequestOutput& delta) mutable {
    if (delta.finished) {
      absl::MutexLock lock(&mu_);
      live_ids_.erase(id);
    }
    if (first) {
      first = false;
      if (auto it = first_scheduled_.find(id); it != first_scheduled_.end()) {
        RequestOutput stamped = delta;
        stamped.first_scheduled_time_s = it->second;
        first_scheduled_.erase(it);
        callback(stamped);
        return;
      }
    }
    callback(delta);
  };
  // Outside the lock: a resumed request replays its outputs through the detokenizer here.
  ASSIGN_OR_RETURN(OutputProcessor::PreparedRequest prepared,
                   processor_.Prepare(request, std::move(deliver)));
  absl::MutexLock lock(&mu_);
  if (stopping_) return absl::FailedPreconditionError("the engine is stopped");
  if (!failure_.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("the engine failed and takes no requests: ", failure_.ToString()));
  }
  // The scheduler frees an id when it finishes the request, which may be before the client has
  // its final delta (an abort on its way): the id stays taken until then.
  if (live_ids_.contains(request.request_id)) {
    return absl::AlreadyExistsError(
        absl::StrCat("request ", request.request_id, " is already in the engine"));
  }
  std::string id = request.request_id;
  RETURN_IF_ERROR(scheduler_->AddRequest(std::move(request)));
  live_ids_.insert(std::move(id));
  intake_.push_back(std::move(prepared));
  ++generation_;
  return absl::OkStatus();
}

void EngineLoop::Abort(const std::string& request_id) {
  absl::MutexLock lock(&mu_);
  if (!live_ids_.contains(request_id)) return;
  scheduler_->AbortRequest(request_id);
  intake_.push_back(request_id);
  ++generation_;
}

int64_t EngineLoop::NumCachedPrefixTokens(absl::Span<const int32_t> token_ids) const {
  if (!config_.enable_prefix_caching) return 0;
  // Hashing costs O(tokens) and needs no lock; the loop thread holds mu_ while it plans.
  const std::vector<BlockHash> hashes = KVCacheManager::PrefixBlockHashes(token_ids, block_size_);
  if (hashes.empty()) return 0;
  absl::MutexLock lock(&mu_);
  return scheduler_->kv_cache().NumLeadingCachedBlocks(hashes) * block_size_;
}

void EngineLoop::SetStepObserver(StepObserver observer) {
  auto shared = observer ? std::make_shared<const StepObserver>(std::move(observer)) : nullptr;
  absl::MutexLock lock(&mu_);
  step_observer_ = std::move(shared);
}

SchedulerStats EngineLoop::stats() const {
  absl::MutexLock lock(&mu_);
  return scheduler_->stats();
}

absl::Status EngineLoop::status() const {
  absl::MutexLock lock(&mu_);
  return failure_;
}

EngineLoop::Intake EngineLoop::TakeIntakeLocked() {
  Intake intake;
  intake.swap(intake_);
  return intake;
}

void EngineLoop::ApplyIntake(Intake intake) {
  for (IntakeEvent& event : intake) {
    if (std::string* abort_id = std::get_if<std::string>(&event)) {
      processor_.Abort(*abort_id);
      continue;
    }
    // The id was not live when added, so the processor holds no request under it.
    absl::Status s =
        processor_.AddRequest(std::move(std::get<OutputProcessor::PreparedRequest>(event)));
    if (!s.ok()) PAGODA_LOG(error, "output processor: {}", std::string(s.message()));
  }
}

bool EngineLoop::ShouldWakeLocked() const {
  return stopping_ || !intake_.empty() ||
         (failure_.ok() && scheduler_->HasUnfinishedRequests() && idle_generation_ != generation_);
}

void EngineLoop::Run() {
  while (true) {
    std::optional<ScheduledStep> step;
    Intake intake;
    bool stop = false;
    {
      absl::MutexLock lock(&mu_);
      if (in_flight_.empty()) {
        mu_.Await(absl::Condition(this, &EngineLoop::ShouldWakeLocked));
      }
      intake = TakeIntakeLocked();
      stop = stopping_;
      // Async output keeps one step running while the previous one is processed; without it,
      // the next step is planned only once the last result is in.
      const bool may_schedule = config_.async_output ? in_flight_.size() < 2 : in_flight_.empty();
      if (!stop && failure_.ok() && may_schedule) step = scheduler_->Schedule();
      if (!step.has_value() && in_flight_.empty()) {
        // Nothing runs and nothing will finish: sleep until a request or an abort arrives.
        idle_generation_ = generation_;
        if (failure_.ok() && scheduler_->HasUnfinishedRequests()) {
          PAGODA_LOG(debug, "engine: requests are held but none can be scheduled");
        }
      }
    }
    ApplyIntake(std::move(intake));
    if (stop) break;
    if (step.has_value()) {
      const double now_s = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
      for (const std::string& id : step->started_request_ids) first_scheduled_[id] = now_s;
      in_flight_stats_.push_back(
          {.stats = {.num_scheduled_tokens = step->num_scheduled_tokens(),
                     .num_prefill_tokens = step->num_prefill_tokens,
                     .num_decode_tokens = step->num_decode_tokens,
                     .num_preemptions = static_cast<int64_t>(step->preempted_seq_ids.size()),
                     .num_steps = step->plan.num_steps},
           .submitted = absl::Now()});
      in_flight_.push_back(executor_->Submit(std::move(step->plan)));
    }
    if (!in_flight_.empty() &&
        (!config_.async_output || in_flight_.size() > 1 || !step.has_value())) {
      ProcessOldestStep();
    }
  }
  // Stopping: let the executor finish the steps it was given, then end every request.
  while (!in_flight_.empty()) {
    in_flight_.front().wait();
    in_flight_.pop_front();
    in_flight_stats_.pop_front();
  }
  Intake intake;
  {
    absl::MutexLock lock(&mu_);
    intake = TakeIntakeLocked();
  }
  ApplyIntake(std::move(intake));
  processor_.AbortAll("engine stopped");
}

bool EngineLoop::ProcessOldestStep() {
  absl::StatusOr<StepResult> result = in_flight_.front().get();
  in_flight_.pop_front();
  const absl::Time result_time = absl::Now();
  StepStats step_stats = in_flight_stats_.front().stats;
  step_stats.duration_s = absl::ToDoubleSeconds(
      result_time - std::max(in_flight_stats_.front().submitted, last_result_time_));
  last_result_time_ = result_time;
  in_flight_stats_.pop_front();
  if (!result.ok()) {
    Fail(result.status());
    return false;
  }
  std::vector<SequenceUpdate> updates;
  Intake intake;
  std::shared_ptr<const StepObserver> observer;
  {
    absl::MutexLock lock(&mu_);
    intake = TakeIntakeLocked();
    updates = scheduler_->ApplyResult(*result);
    // Guarded drafts dropped on a wrong guess were planned but never computed.
    const int64_t dropped = scheduler_->last_applied_dropped_draft_tokens();
    step_stats.num_decode_tokens -= dropped;
    step_stats.num_scheduled_tokens -= dropped;
    observer = step_observer_;
  }
  if (observer != nullptr) (*observer)(step_stats);
  ApplyIntake(std::move(intake));
  // Stop strings reach the scheduler before any callback runs: a client that sees its request
  // finish finds the scheduler done with it too (and may reuse the id).
  processor_.Process(updates, [this](std::span<const std::string> stopped) {
    absl::MutexLock lock(&mu_);
    for (const std::string& seq_id : stopped)
      scheduler_->FinishSequence(seq_id, FinishReason::kStop);
  });
  return true;
}

void EngineLoop::Fail(const absl::Status& status) {
  const std::string message = absl::StrCat("executor failed: ", status.ToString());
  PAGODA_LOG(error, "engine: {}; failing {} requests", message, processor_.num_requests());
  // Later steps ran on a replica in an unknown state: their results are dropped.
  while (!in_flight_.empty()) {
    in_flight_.front().wait();
    in_flight_.pop_front();
    in_flight_stats_.pop_front();
  }
  Intake intake;
  {
    absl::MutexLock lock(&mu_);
    failure_ = status;
    intake = TakeIntakeLocked();
  }
  ApplyIntake(std::move(intake));
  processor_.AbortAll(message);
}

absl::StatusOr<std::vector<RequestOutput>> EngineLoop::RunToCompletion(
    std::vector<EngineRequest> requests, DeltaObserver on_delta) {
  // Shared with the callbacks, which may run a little after the last one signals.
  struct Collector {
    absl::Mutex mu;
    std::vector<RequestOutput> results ABSL_GUARDED_BY(mu);
    size_t num_unfinished ABSL_GUARDED_BY(mu) = 0;
    bool Done() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return num_unfinished == 0; }
  };
  auto collector = std::make_shared<Collector>();
  const size_t num_requests = requests.size();
  {
    absl::MutexLock lock(&collector->mu);
    collector->results.resize(num_requests);
    collector->num_unfinished = num_requests;
  }
  std::vector<std::string> ids(num_requests);
  for (size_t i = 0; i < num_requests; ++i) {
    if (requests[i].request_id.empty()) {
      requests[i].request_id = absl::StrCat("offline-", next_offline_id_.fetch_add(1));
    }
    ids[i] = requests[i].request_id;
    absl::Status s =
        AddRequest(std::move(requests[i]), [collector, i, on_delta](const RequestOutput& delta) {
          if (on_delta) on_delta(i, delta);
          absl::MutexLock lock(&collector->mu);
          MergeRequestOutput(collector->results[i], delta);
          if (delta.finished) --collector->num_unfinished;
        });
    if (!s.ok()) {
      {
        absl::MutexLock lock(&collector->mu);
        collector->num_unfinished -= num_requests - i;
      }
      for (size_t j = 0; j < i; ++j) Abort(ids[j]);
      absl::MutexLock lock(&collector->mu, absl::Condition(collector.get(), &Collector::Done));
      return absl::Status(s.code(), absl::StrCat("request ", i, " (", ids[i], "): ", s.message()));
    }
  }
  absl::MutexLock lock(&collector->mu, absl::Condition(collector.get(), &Collector::Done));
  for (const RequestOutput& result : collector->results) {
    if (!result.error.empty()) {
      return absl::UnavailableError(
          absl::StrCat("request ", result.request_id, ": ", result.error));
    }
  }
  return std::move(collector->results);
}

}  // namespace pagoda
