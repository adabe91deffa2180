// PlanBuilder: assembles one ScheduledStep — the StepPlan for the workers plus the engine's
// bookkeeping — while a batching policy picks its sequences. Adding a sequence registers its
// full blocks in the prefix cache, sends it whole (NewSequence) or as a delta (CachedSequence),
// and counts the samples it is expected to produce; Finish then collects each sequence's new and
// replaced block ids and the plan's block copies from the KVCacheManager, which ends its plan
// round.
//
//   plan.Begin(step_id);
//   if (kv.AllocateSlots(seq->handle, n)) plan.Add(seq, computed_before, n, 1,
//   /*is_decode=*/false); ScheduledStep step = plan.Finish(); for (const auto& [seq, num_tokens] :
//   plan.samples()) { ... expect num_tokens from seq ... }
//
// One plan at a time; the scratch lists are reused from plan to plan.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/step/step.h"
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

class PlanBuilder {
 public:
  /// `kv` must outlive the builder.
  explicit PlanBuilder(KVCacheManager* kv) : kv_(kv) {}
  PlanBuilder(const PlanBuilder&) = delete;
  PlanBuilder& operator=(const PlanBuilder&) = delete;

  /// Starts the plan of `step_id`: empty, one step per plan until set_num_steps.
  void Begin(int64_t step_id);

  /// Adds `seq`, whose KV slots are allocated: it computes num_first_step_tokens tokens from
  /// position computed_before in the first step and is expected to sample num_expected_samples
  /// tokens in all (0: a prefill chunk that does not reach its end). `is_decode` counts its
  /// tokens as decode rather than prefill.
  void Add(Sequence* seq, int64_t computed_before, int64_t num_first_step_tokens,
           int64_t num_expected_samples, bool is_decode);
  /// The workers drop `seq`'s state in this plan (finished, preempted or swapped out), if they
  /// hold it.
  void DropFromWorkers(Sequence* seq);
  void AddSwapOuts(const std::vector<BlockPair>& device_to_host);
  void AddSwapIns(const std::vector<BlockPair>& host_to_device);
  void RecordPreemption(const Sequence& seq) { step_.preempted_seq_ids.push_back(seq.seq_id); }
  void RecordStart(const Request& request) { step_.started_request_ids.push_back(request.id()); }

  /// Decode steps a plan of only decodes covers (multi-step); 1 otherwise.
  void set_num_steps(int32_t num_steps) { num_steps_ = num_steps; }
  int32_t num_steps() const { return num_steps_; }
  int64_t num_seqs() const { return num_seqs_; }
  /// A running sequence sits this plan out while its result is in flight (a speculating sequence
  /// waits for its verification): it still holds its seat under max_num_seqs.
  void HoldSeat() { ++num_held_seats_; }
  /// The plan's sequences and the held seats: what max_num_seqs bounds.
  int64_t num_seats() const { return num_seqs_ + num_held_seats_; }
  bool preempted_any() const { return !step_.preempted_seq_ids.empty(); }

  /// Completes the plan (block ids, copy-on-write copies, num_steps) and hands it over. Ends the
  /// KVCacheManager's plan round.
  ScheduledStep Finish();
  /// The plan's sampling sequences and the tokens each is expected to produce, in plan order;
  /// valid until the next Begin.
  const std::vector<std::pair<Sequence*, int64_t>>& samples() const { return samples_; }

 private:
  KVCacheManager* const kv_;
  ScheduledStep step_;
  // The plan's sequences, in plan order: those sent whole and those sent as deltas.
  std::vector<Sequence*> new_seqs_;
  std::vector<Sequence*> cached_seqs_;
  std::vector<std::pair<Sequence*, int64_t>> samples_;  // (sequence, tokens expected)
  int64_t num_seqs_ = 0;
  int64_t num_held_seats_ = 0;
  int32_t num_steps_ = 1;
};

}  // namespace pagoda
