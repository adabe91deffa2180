// Scheduler: the iteration-level scheduler of one replica (continuous batching over a paged KV
// cache). It owns the requests, their sequences and the KVCacheManager, and turns them into one
// StepPlan per step:
//   - running decodes first (oldest first, or by priority), then prefill chunks from the waiting
//     queue (FCFS or priority), within max_num_seqs and max_num_batched_tokens; a prompt longer
//     than the budget spans several steps (chunked prefill);
//   - the prefix cache is looked up at admission, so a request sharing cached full blocks
//     schedules only its suffix;
//   - when blocks run out, the lowest-priority / newest running sequence is preempted (recompute:
//     freed and re-prefilled later with its outputs kept; or swap: moved to host blocks);
//   - n > 1 prefills the prompt once and forks the other samples from it (shared blocks,
//     copy-on-write); beam search keeps the beam_width best beams (engine/beam_search.h);
//   - multi-step: a plan of only decodes covers num_scheduler_steps steps;
//   - SchedulerKind::kStatic reserves prompt + max_tokens per request and runs fixed batches
//     until all of them finish (a baseline for benchmarks only).
//
// It composes one component per concern and keeps admission, the in-flight plans and results:
//   - SequenceRegistry (engine/sequence_registry.h): requests, sequences and their queues;
//   - PlanBuilder (engine/plan_builder.h): the StepPlan being built;
//   - a BatchingPolicy (engine/continuous_batching.h or static_batching.h) that picks the
//     sequences of each plan, with the Preemptor (engine/preemptor.h) when blocks run out;
//   - BeamSearch (engine/beam_search.h) for beam requests; KVCacheManager for the block tables;
//   - with n-gram speculation over a history, the LookupHistory (engine/lookup_history.h) of
//     finished sequences;
//   - the token stop rules the workers share (common/step/stop_rules.h).
//
// Asynchronous use: Schedule() for step n+1 may be called before ApplyResult() of step n (any
// number of steps may be in flight; results are applied in step order). A sampled sequence
// scheduled in an in-flight step is assumed to produce its tokens there; those tokens stay on the
// workers as the next input. A sequence found finished when its result arrives is dropped in the
// next plan, and tokens it produced in later in-flight steps are discarded. Beam-search sequences
// are synchronous: they wait for their previous result before they are scheduled again; so does
// a sequence whose speculative drafts are in flight (a guarded proposal made while its last token
// was in flight waits only if the guess holds: ResolveDraftGuard).
//
//   Scheduler scheduler(config, executor->info(), tokenizer.eos_token_ids());
//   RETURN_IF_ERROR(scheduler.AddRequest(std::move(request)));
//   while (scheduler.HasUnfinishedRequests()) {
//     std::optional<ScheduledStep> step = scheduler.Schedule();
//     if (!step) { apply an in-flight result first; continue; }
//     ASSIGN_OR_RETURN(StepResult result, executor->Submit(std::move(step->plan)).get());
//     for (const SequenceUpdate& update : scheduler.ApplyResult(result)) { ... stream ... }
//   }
//
// Not thread-safe: one EngineLoop thread owns it.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "common/step/executor.h"
#include "common/step/step.h"
#include "engine/beam_search.h"
#include "engine/engine_config.h"
#include "engine/finish_reason.h"
#include "engine/kv_cache_manager.h"
#include "engine/lookup_history.h"
#include "engine/plan_builder.h"
#include "engine/preemptor.h"
#include "engine/request.h"
#include "engine/sequence_registry.h"
#include "engine/sequence_update.h"

namespace pagoda {

class BatchingPolicy;

struct SchedulerStats {
  int64_t num_running_requests = 0;
  int64_t num_waiting_requests = 0;  // not running, swapped sequences excluded
  int64_t num_swapped_requests = 0;
  int64_t num_running_seqs = 0;
  int64_t num_waiting_seqs = 0;
  int64_t num_swapped_seqs = 0;
  double kv_cache_usage = 0;  // share of device blocks referenced, [0, 1]
  int64_t num_free_blocks = 0;
  /// Prompt (and recompute) tokens of waiting and running sequences not computed yet: the
  /// prefill work queued, before prefix-cache hits (those are known only when scheduled).
  int64_t num_queued_prefill_tokens = 0;
  int64_t num_preemptions = 0;       // total
  int64_t prefix_cache_queries = 0;  // tokens
  int64_t prefix_cache_hits = 0;     // tokens
  int64_t last_num_scheduled_tokens = 0;
  int64_t last_num_prefill_tokens = 0;
  int64_t last_num_decode_tokens = 0;
  int64_t num_in_flight_steps = 0;
  /// Tokens (prefill + decode) of the steps in flight: computing now, although their sequences
  /// already count them as computed (the router's estimate of the work ahead needs them).
  int64_t num_in_flight_tokens = 0;
  /// Speculative decoding, totals (vLLM's spec_decode_* counters): verifications with drafts,
  /// drafts proposed, drafts accepted, and accepted drafts by position (index i: the (i+1)-th
  /// draft of a proposal).
  int64_t spec_num_drafts = 0;
  int64_t spec_num_draft_tokens = 0;
  int64_t spec_num_accepted_tokens = 0;
  std::vector<int64_t> spec_num_accepted_tokens_per_pos;
};

class Scheduler {
 public:
  /// `config` must have passed config.Validate(info). `eos_token_ids`: the ids the workers stop
  /// on (the model config's and the tokenizer's), so the scheduler finishes sequences where the
  /// workers stop sampling them.
  Scheduler(const EngineConfig& config, const ExecutorInfo& info,
            std::vector<int32_t> eos_token_ids = {});
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  /// Queues a request. InvalidArgument when it can never run (prompt + max_tokens beyond
  /// max_model_len, more blocks than the whole cache, empty prompt, invalid sampling params,
  /// ids outside the vocabulary, resumed outputs that are not a valid continuation);
  /// AlreadyExists when an unfinished request has the id (a finished one's id is free at once,
  /// even before its blocks are released); ResourceExhausted when the waiting queue is full.
  absl::Status AddRequest(EngineRequest request);

  /// Finishes every sequence of the unfinished request with this id with kAbort; its blocks are
  /// freed at the next plan. Unknown or finished ids are ignored.
  void AbortRequest(const std::string& request_id);

  /// The next plan, or nullopt when nothing can run now (no work, or every runnable sequence
  /// waits for an in-flight result: apply one and ask again).
  std::optional<ScheduledStep> Schedule();

  /// Applies the result of the oldest in-flight plan: appends the sampled tokens, finishes
  /// sequences on stop tokens, max_tokens and max_model_len (the workers' own rules), advances
  /// beam search. Returns the new tokens and finish states of each sequence that changed.
  std::vector<SequenceUpdate> ApplyResult(const StepResult& result);
  /// Of the step whose result ApplyResult applied last: the guarded drafts its plan carried that
  /// the workers dropped (a wrong guess: CachedSequence::draft_guard_token_id), so never computed.
  /// The plan's decode tokens less these are what the step computed.
  int64_t last_applied_dropped_draft_tokens() const { return last_dropped_draft_tokens_; }

  /// Finishes one sequence (e.g. a stop string found by the OutputProcessor); its blocks are
  /// freed at the next plan and later tokens are discarded. Unknown ids are ignored. A seq_id
  /// names the latest request's sequence: finish a request's stopped sequences before its id
  /// can be reused.
  void FinishSequence(const std::string& seq_id, FinishReason reason);

  bool HasUnfinishedRequests() const;
  /// Plans submitted whose results were not applied yet.
  int64_t num_in_flight_steps() const { return static_cast<int64_t>(in_flight_.size()); }
  SchedulerStats stats() const;

  const KVCacheManager& kv_cache() const { return *kv_; }
  int64_t max_model_len() const { return max_model_len_; }

 private:
  struct InFlightStep;

  // Admission.
  absl::Status CheckFits(const EngineRequest& request) const;
  // A resumed request's outputs: a continuation the original replica could have produced.
  absl::Status CheckResumed(const EngineRequest& request) const;
  // Releases sequences finished or aborted since the last plan.
  void ReleaseFinished();
  // Results.
  // Speculative decoding: commits the accepted drafts' KV slots and counts the verification.
  void CommitDrafts(Sequence* seq, int64_t num_drafts, int64_t num_outputs);
  // Guarded drafts, once the token they were guessed to follow is known: a wrong guess turns
  // the step in flight into a plain decode, as the workers do (CachedSequence::
  // draft_guard_token_id), so the sequence no longer waits for it.
  void ResolveDraftGuard(Sequence* seq, int32_t token);
  void AppendTokens(Sequence* seq, const SequenceOutput& output,
                    std::vector<SequenceUpdate>& updates);

  const EngineConfig config_;
  const ExecutorInfo info_;
  const int64_t block_size_;
  const int64_t max_model_len_;
  const int64_t num_device_blocks_;
  const int64_t vocab_size_;
  const std::vector<int32_t> eos_token_ids_;
  std::unique_ptr<KVCacheManager> kv_;
  // N-gram speculation's lookups in finished sequences (null when off): ReleaseFinished adds them.
  std::unique_ptr<LookupHistory> history_;
  SequenceRegistry registry_;
  PlanBuilder plan_;
  Preemptor preemptor_;
  std::unique_ptr<BatchingPolicy> batching_;
  BeamSearch beam_search_;
  std::deque<std::unique_ptr<InFlightStep>> in_flight_;

  // Speculative decoding's totals (SchedulerStats::spec_*).
  struct SpeculationTotals {
    int64_t drafts = 0;
    int64_t draft_tokens = 0;
    int64_t accepted_tokens = 0;
    std::vector<int64_t> accepted_per_pos;
  };
  SpeculationTotals spec_;
  int64_t next_step_id_ = 0;
  int64_t last_prefill_tokens_ = 0;
  int64_t last_decode_tokens_ = 0;
  int64_t last_dropped_draft_tokens_ = 0;
};

}  // namespace pagoda
