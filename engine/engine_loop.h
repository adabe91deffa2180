// EngineLoop: one replica's engine — a Scheduler, an OutputProcessor and an Executor driven by
// one loop thread. Requests and aborts come from any thread; outputs stream back through each
// request's callback (on the loop thread).
//
// Each iteration the loop takes new requests and aborts, asks the scheduler for a plan and
// submits it. With config.async_output it then processes the previous step's result (apply to
// the scheduler, detokenize, stop strings, callbacks) while the executor runs the step just
// submitted, so the executor never waits on the engine's CPU work; without it, each step's
// result is processed before the next step is planned.
//
// Executor errors: an error result leaves the replica's state unknown (common/executor.h), so
// the loop fails every request it holds (finish_reason abort, RequestOutput::error naming the
// executor's error) and then refuses new requests with FailedPrecondition; the owner makes a new
// EngineLoop over a re-initialized executor. Stop() (or the destructor) aborts the requests
// still running with the error "engine stopped" and joins the loop thread.
//
// A request moved here from a failed replica (EngineRequest::resumed_output_token_ids) is
// prefilled with the outputs it already streamed and its stream continues right after them.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<EngineLoop> engine,
//                    EngineLoop::Create(config, executor.get(), tokenizer.get(), eos_ids));
//   RETURN_IF_ERROR(engine->AddRequest(std::move(request),
//                                      [](const RequestOutput& delta) { stream(delta); }));
//   engine->Abort("r1");                                   // from any thread
//   ASSIGN_OR_RETURN(std::vector<RequestOutput> results,  // offline: all requests to the end
//                    engine->RunToCompletion(std::move(requests)));
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/step/executor.h"
#include "common/tokenizer/tokenizer.h"
#include "engine/engine_config.h"
#include "engine/output_processor.h"
#include "engine/request.h"
#include "engine/scheduler.h"

namespace pagoda {

/// What one step planned, reported to the step observer once its result is applied.
struct StepStats {
  int64_t num_scheduled_tokens = 0;  // prefill + decode tokens of the plan's first step
  int64_t num_prefill_tokens = 0;
  int64_t num_decode_tokens = 0;
  int64_t num_preemptions = 0;  // sequences preempted while planning it
  int32_t num_steps = 1;        // multi-step plans cover several decode steps
  /// Wall time from the later of its submission and the previous step's result to its own
  /// result: about its execution time, also when async output overlaps two steps.
  double duration_s = 0;
};

using StepObserver = std::function<void(const StepStats&)>;

class EngineLoop {
 public:
  /// Validates `config` against the executor and starts the loop thread. `executor` and
  /// `tokenizer` are borrowed and must outlive the loop. `eos_token_ids`: the ids the executor
  /// stops on (model config and tokenizer), so the scheduler finishes the same sequences.
  static absl::StatusOr<std::unique_ptr<EngineLoop>> Create(const EngineConfig& config,
                                                            Executor* executor,
                                                            const Tokenizer* tokenizer,
                                                            std::vector<int32_t> eos_token_ids);
  /// The same, owning the executor.
  static absl::StatusOr<std::unique_ptr<EngineLoop>> Create(const EngineConfig& config,
                                                            std::unique_ptr<Executor> executor,
                                                            const Tokenizer* tokenizer,
                                                            std::vector<int32_t> eos_token_ids);

  /// Stop().
  ~EngineLoop();
  EngineLoop(const EngineLoop&) = delete;
  EngineLoop& operator=(const EngineLoop&) = delete;

  /// Queues a request; `callback` gets its deltas, the last with finished = true (always, also
  /// on abort or failure). Admission errors (InvalidArgument: can never fit, invalid params,
  /// resumed outputs that are no valid continuation; AlreadyExists: the id is live;
  /// ResourceExhausted: queue full) come back here, and then the callback is never called.
  /// FailedPrecondition after Stop() or an executor failure.
  /// An id is live from here until its final delta is delivered: the final callback itself, or
  /// anyone who has seen it, may add a request with the same id at once (its blocks are still
  /// released at the next plan, under the finished request's internal key).
  absl::Status AddRequest(EngineRequest request, OutputCallback callback);

  /// Aborts a request: its blocks are freed at the next plan and its callback gets the last
  /// delta with finish_reason abort. Ids that are not live are ignored.
  void Abort(const std::string& request_id);

  /// How many leading tokens of token_ids are covered by full blocks in this replica's prefix
  /// cache now (never the last token, which admission always computes); 0 with caching off. For
  /// prefix-aware routing: thread-safe, hashes without the lock and looks up under it.
  int64_t NumCachedPrefixTokens(absl::Span<const int32_t> token_ids) const;

  /// Aborts everything still running ("engine stopped"), waits for the executor's in-flight
  /// steps and joins the loop thread. Idempotent.
  void Stop();

  /// Adds every request (ids left empty become unique "offline-<k>") and blocks until all have
  /// finished; returns their accumulated outputs in request order. An admission error aborts
  /// the requests already added and is returned naming the request's position; a request the
  /// engine failed (executor error, Stop) turns into an Unavailable error with its message.
  /// `on_delta`, when given, sees every delta of request `index` (its position in `requests`)
  /// as it is delivered, before it is merged: for timing (`pagoda bench throughput`'s TTFT and
  /// decode rate). It runs on the delivering thread and must not block.
  using DeltaObserver = std::function<void(size_t index, const RequestOutput& delta)>;
  absl::StatusOr<std::vector<RequestOutput>> RunToCompletion(std::vector<EngineRequest> requests,
                                                             DeltaObserver on_delta = {});

  /// Called on the loop thread after each step's result is applied (not for steps dropped by a
  /// failure or Stop); must not block. Replaces the previous observer; empty: none.
  void SetStepObserver(StepObserver observer);

  SchedulerStats stats() const;
  /// The executor error that failed the loop, or OK.
  absl::Status status() const;

 private:
  // What the loop thread takes from the other threads, under mu_, in call order: a request for
  // the output processor or the id of one to abort. The order matters once ids are reused: an
  // abort must reach the request it was meant for, not a later one with the same id.
  using IntakeEvent = std::variant<OutputProcessor::PreparedRequest, std::string>;
  using Intake = std::vector<IntakeEvent>;

  EngineLoop(const EngineConfig& config, Executor* executor, std::unique_ptr<Executor> owned,
             const Tokenizer* tokenizer, std::vector<int32_t> eos_token_ids);

  void Run();
  Intake TakeIntakeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Hands new requests and aborts to the output processor, in order (loop thread, no lock held).
  void ApplyIntake(Intake intake);
  // Waits for, applies and processes the oldest in-flight step; false when the executor failed.
  bool ProcessOldestStep();
  // Fails every request after an executor error and marks the loop failed.
  void Fail(const absl::Status& status);
  bool ShouldWakeLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const EngineConfig config_;
  std::unique_ptr<Executor> owned_executor_;  // may be null: borrowed
  Executor* const executor_;
  const int64_t block_size_;  // tokens per KV block (executor_->info())

  // Loop thread only (but Prepare(), which any thread may call).
  OutputProcessor processor_;
  std::deque<std::future<absl::StatusOr<StepResult>>> in_flight_;
  // Beside in_flight_, for the step observer: each step's stats and when it was submitted.
  struct InFlightStats {
    StepStats stats;
    absl::Time submitted;
  };
  std::deque<InFlightStats> in_flight_stats_;
  absl::Time last_result_time_ = absl::InfinitePast();  // of the last step processed
  // When each request was first scheduled (Unix seconds), until its first delta carries it.
  absl::flat_hash_map<std::string, double> first_scheduled_;

  mutable absl::Mutex mu_;
  std::unique_ptr<Scheduler> scheduler_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const StepObserver> step_observer_ ABSL_GUARDED_BY(mu_);
  Intake intake_ ABSL_GUARDED_BY(mu_);
  // Ids added whose final delta has not been delivered yet.
  absl::flat_hash_set<std::string> live_ids_ ABSL_GUARDED_BY(mu_);
  // Bumped by every AddRequest, Abort and Stop: wakes a loop that had nothing to schedule.
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  // generation_ when Schedule() last had nothing to run with nothing in flight.
  uint64_t idle_generation_ ABSL_GUARDED_BY(mu_) = ~uint64_t{0};
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status failure_ ABSL_GUARDED_BY(mu_);

  std::atomic<uint64_t> next_offline_id_ = 0;  // RunToCompletion's default request ids
  absl::Mutex join_mu_;                        // serializes Stop() callers
  std::thread thread_;  // last member: starts after everything it uses is built
};

}  // namespace pagoda
