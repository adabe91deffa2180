// BatchingPolicy: which sequences the next plan runs. Two policies, chosen by
// EngineConfig::scheduler:
//   - ContinuousBatching (engine/continuous_batching.h): iteration-level batching with chunked
//     prefill, prefix-cache-aware admission, preemption, multi-step decode plans (the default);
//   - StaticBatching (engine/static_batching.h): fixed batches that reserve prompt + max_tokens
//     per request and run until all of them finish (a baseline for benchmarks only).
// Both continue their running sequences with the stage this base class holds: decodes and prefill
// chunks, in queue order, within max_num_seqs and a token budget, preempting from the back of the
// running queue (the lowest-priority, newest sequences) when blocks run out. With speculative
// decoding a decoding sequence carries the proposer's drafts, their KV slots reserved as
// lookahead when blocks allow (drafts never preempt anyone); one whose drafts are in flight is
// planned once that result is applied (it yields an unknown number of tokens). The n-gram lookup
// of a pipelined sequence, whose last token is still in flight, guesses that token as well and
// sends the drafts behind it as a guard (CachedSequence::draft_guard_token_id): looking up
// never waits.
//
//   std::unique_ptr<BatchingPolicy> policy = std::make_unique<ContinuousBatching>(parts);
//   plan.Begin(step_id);
//   policy->Schedule(plan, num_in_flight_steps);
#pragma once

#include <cstdint>

#include "engine/engine_config.h"
#include "engine/kv_cache_manager.h"
#include "engine/ngram_proposer.h"
#include "engine/plan_builder.h"
#include "engine/preemptor.h"
#include "engine/request.h"
#include "engine/sequence_registry.h"

namespace pagoda {

/// What a policy schedules over; every pointer must outlive the policy.
struct BatchingParts {
  const EngineConfig* config = nullptr;
  SequenceRegistry* registry = nullptr;
  KVCacheManager* kv = nullptr;
  Preemptor* preemptor = nullptr;
  const LookupHistory* history = nullptr;  // n-gram lookups in finished sequences (may be null)
  int64_t max_model_len = 0;               // the engine's (config, else the executor's)
};

class BatchingPolicy {
 public:
  virtual ~BatchingPolicy() = default;
  BatchingPolicy(const BatchingPolicy&) = delete;
  BatchingPolicy& operator=(const BatchingPolicy&) = delete;

  /// Adds the sequences to run to `plan` (begun, empty), allocating their KV slots.
  /// `num_in_flight_steps`: plans submitted whose results are not applied yet.
  virtual void Schedule(PlanBuilder& plan, int64_t num_in_flight_steps) = 0;

  /// Speculative decoding, after a verification of one draft that was rejected: the sequence
  /// decodes without proposals for a while (doubling, up to kMaxSpeculationBackoff steps; an
  /// accepted draft resets it).
  static void BackOffSpeculation(Sequence* seq);
  /// After a verification of `num_drafts` drafts of which `accepted` were: the next proposal's
  /// length doubles (to `max_tokens`) when all were accepted, else is one past what was; a
  /// single draft rejected backs off.
  static void AdaptSpeculation(Sequence* seq, int64_t num_drafts, int64_t accepted,
                               int32_t max_tokens);
  static constexpr int32_t kMaxSpeculationBackoff = 4;
  /// A sequence running alone waits for its token in flight to look up while it is at most this
  /// many outputs past its last accepted draft (WaitsToLookUp).
  static constexpr int64_t kLookupWaitTokens = 16;

 protected:
  explicit BatchingPolicy(const BatchingParts& parts);

  /// The running stage: continues running sequences (decodes of plan.num_steps() steps, prefill
  /// chunks) in queue order within max_num_seqs and `token_budget`, which it decreases.
  void ScheduleRunning(PlanBuilder& plan, int64_t& token_budget);
  /// A request's first admission: it leaves the waiting count and the plan reports its start.
  void MarkStarted(PlanBuilder& plan, Request* request);
  /// Outputs `seq` may still produce, counting the in-flight ones (max_tokens, max_model_len).
  int64_t RemainingTokens(const Sequence& seq) const;
  /// Speculative decoding: whether `seq` may propose now: not beam search, not opted out, and no
  /// more running sequences than disable_by_batch_size.
  bool Speculates(const Sequence& seq) const;
  /// Whether `seq` waits for its pending tokens whatever the rest of the batch does: it has
  /// drafts in flight.
  bool MustWait(const Sequence& seq) const;
  /// Whether `seq`, speculating with a token in flight, waits for it to look up with it known
  /// rather than guess it: when other sequences wait anyway (`any_waits`), or when it runs alone
  /// and a draft of its was accepted within the last kLookupWaitTokens outputs. There a lookup
  /// that knows the token finds the place that continues with it, where a guess takes the latest
  /// place's continuation and loses its drafts when that is wrong; on text the lookups do not
  /// predict, the sequence keeps its pipelining.
  bool WaitsToLookUp(const Sequence& seq, bool any_waits) const;
  /// Proposes up to `max_drafts` drafts for a decoding `seq` with at most one token in flight
  /// (then behind a guard, or from the workers' draft model) and reserves their slots; returns
  /// how many (they are in seq->draft_token_ids).
  int64_t AddDrafts(Sequence* seq, int64_t max_drafts);

  const EngineConfig& config_;
  SequenceRegistry& registry_;
  KVCacheManager& kv_;
  Preemptor& preemptor_;
  const int64_t max_model_len_;
  const NgramProposer proposer_;
};

}  // namespace pagoda
