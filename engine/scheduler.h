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
//     copy-on-write); beam search keeps the beam_width best beams (router/beam_search.h);
//   - multi-step: a plan of only decodes covers num_scheduler_steps steps;
//   - SchedulerKind::kStatic reserves prompt + max_tokens per request and runs fixed batches
//     until all of them finish (a baseline for benchmarks only).
//
// Asynchronous use: Schedule() for step n+1 may be called before ApplyResult() of step n (any
// number of steps may be in flight; results are applied in step order). A sampled sequence
// scheduled in an in-flight step is assumed to produce its tokens there; those tokens stay on the
// workers as the next input. A sequence found finished when its result arrives is dropped in the
// next plan, and tokens it produced in later in-flight steps are discarded. Beam-search sequences
// are synchronous: they wait for their previous result before they are scheduled again.
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

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "common/step/executor.h"
#include "common/step/step.h"
#include "engine/engine_config.h"
#include "engine/finish_reason.h"
#include "engine/kv_cache_manager.h"
#include "engine/request.h"

namespace pagoda {

/// One sequence of a plan, for the engine's bookkeeping.
struct ScheduledSequence {
  std::string seq_id;
  std::string request_id;
  int32_t index = 0;                 // the sample (or beam) index within its request
  int64_t num_scheduled_tokens = 0;  // tokens computed in the plan's first step
  bool is_prefill = false;           // computes known tokens (prompt, or a re-prefill)
  bool samples = false;              // produces a token (per step) in this plan
};

struct ScheduledStep {
  StepPlan plan;
  std::vector<ScheduledSequence> sequences;
  int64_t num_prefill_tokens = 0;  // known tokens computed (prompt chunks, re-prefills)
  int64_t num_decode_tokens = 0;   // decode tokens of the first step (one per decoding sequence)
  std::vector<std::string> preempted_seq_ids;    // preempted while building this plan
  std::vector<std::string> started_request_ids;  // requests scheduled for the first time

  int64_t num_scheduled_tokens() const { return num_prefill_tokens + num_decode_tokens; }
};

/// What one sequence gained from a result, for the OutputProcessor.
struct SequenceUpdate {
  std::string request_id;
  std::string seq_id;
  /// Output index within the request: sample i of n; for beam search the rank of a returned
  /// beam (beam requests report only once they finish, each beam with all its output tokens).
  int32_t index = 0;
  std::vector<int32_t> new_token_ids;
  std::vector<float> logprobs;  // per new token, when sampling_params.logprobs >= 0
  std::vector<std::vector<std::pair<int32_t, float>>> top_logprobs;
  int64_t num_prompt_tokens = 0;
  int64_t num_output_tokens = 0;  // after the new tokens
  double cumulative_logprob = 0;  // beam search: the beam's cumulative logprob
  std::optional<FinishReason> finish_reason;
  std::optional<int32_t> stop_token_id;  // the stop token (EOS or stop_token_ids) that ended it
  bool request_finished = false;         // no sequence of the request is left unfinished
};

struct SchedulerStats {
  int64_t num_running_requests = 0;
  int64_t num_waiting_requests = 0;  // not running, swapped sequences excluded
  int64_t num_swapped_requests = 0;
  int64_t num_running_seqs = 0;
  int64_t num_waiting_seqs = 0;
  int64_t num_swapped_seqs = 0;
  double kv_cache_usage = 0;  // share of device blocks referenced, [0, 1]
  int64_t num_free_blocks = 0;
  int64_t num_preemptions = 0;       // total
  int64_t prefix_cache_queries = 0;  // tokens
  int64_t prefix_cache_hits = 0;     // tokens
  int64_t last_num_scheduled_tokens = 0;
  int64_t last_num_prefill_tokens = 0;
  int64_t last_num_decode_tokens = 0;
  int64_t num_in_flight_steps = 0;
};

class BeamSearch;

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
  friend class BeamSearch;

  struct InFlightStep;

  // Admission and the two scheduling modes (scheduler.cc).
  absl::Status CheckFits(const EngineRequest& request) const;
  // A resumed request's outputs: a continuation the original replica could have produced.
  absl::Status CheckResumed(const EngineRequest& request) const;
  void ScheduleContinuous(ScheduledStep& step);
  void ScheduleStatic(ScheduledStep& step);
  // Releases sequences finished or aborted since the last plan.
  void ReleaseFinished(ScheduledStep& step);
  void ScheduleRunning(ScheduledStep& step, int64_t& token_budget);
  void ScheduleSwappedIn(ScheduledStep& step, int64_t& token_budget);
  void ScheduleWaiting(ScheduledStep& step, int64_t& token_budget);
  void ForkPendingSamples(ScheduledStep& step);
  // Recompute (frees its blocks, back to waiting) or swap (blocks to the host).
  void Preempt(ScheduledStep& step, Sequence* seq);
  void FinishPlan(ScheduledStep& step);

  // Results.
  void AppendTokens(Sequence* seq, const SequenceOutput& output,
                    std::vector<SequenceUpdate>& updates);
  void Finish(Sequence* seq, FinishReason reason, std::optional<int32_t> stop_token);
  void MaybeRetireRequest(Request* request);

  // Sequences and the lists that hold them.
  Sequence* NewSequence(Request* request, int32_t index, std::vector<int32_t> token_ids);
  void InsertRunning(Sequence* seq);
  void InsertWaiting(Sequence* seq);
  void InsertSwapped(Sequence* seq);
  void RemoveFromLists(Sequence* seq);
  // The scheduling step k of a decode: tokens left before max_tokens / max_model_len.
  int64_t RemainingTokens(const Sequence& seq) const;
  void AddToPlan(ScheduledStep& step, Sequence* seq, int64_t computed_before,
                 int64_t num_first_step_tokens, int64_t num_expected_samples, bool is_decode);

  SeqHandle NewHandle() { return next_handle_++; }
  bool Precedes(const Sequence& a, const Sequence& b) const;

  const EngineConfig config_;
  const int64_t block_size_;
  const int64_t max_model_len_;
  const int64_t num_device_blocks_;
  const int64_t vocab_size_;
  const std::vector<int32_t> eos_token_ids_;
  std::unique_ptr<KVCacheManager> kv_;
  std::unique_ptr<BeamSearch> beam_search_;

  // Every request held, by arrival_order: finished ones stay until their sequences are released
  // and no in-flight plan names them.
  absl::flat_hash_map<uint64_t, std::unique_ptr<Request>> requests_;
  // The latest request / sequence under each id. A finished one may be replaced by a new request
  // reusing its id while it is still held above.
  absl::flat_hash_map<std::string, Request*> requests_by_id_;
  absl::flat_hash_map<std::string, Sequence*> seqs_by_id_;
  std::vector<Sequence*> running_;     // admitted, holding device blocks
  std::deque<Sequence*> waiting_;      // queued or preempted (recompute), in admission order
  std::vector<Sequence*> swapped_;     // preempted by swapping, oldest first
  std::vector<Sequence*> to_release_;  // finished, still known to the KV manager or the workers
  std::deque<std::unique_ptr<InFlightStep>> in_flight_;

  int64_t next_step_id_ = 0;
  SeqHandle next_handle_ = 0;
  uint64_t next_arrival_ = 0;
  int64_t num_preemptions_ = 0;
  int64_t last_prefill_tokens_ = 0;
  int64_t last_decode_tokens_ = 0;
  int64_t num_unstarted_requests_ = 0;
  std::vector<Request*> fork_pending_;  // n > 1 requests whose samples are not forked yet
  // The plan being built: its sequences, in plan order, and the decode step count.
  std::vector<Sequence*> plan_new_seqs_;
  std::vector<Sequence*> plan_cached_seqs_;
  std::vector<std::pair<Sequence*, int64_t>> plan_samples_;  // (sequence, tokens expected)
  int64_t plan_num_seqs_ = 0;
  int32_t plan_num_steps_ = 1;
};

}  // namespace pagoda
