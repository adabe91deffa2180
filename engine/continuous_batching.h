// ContinuousBatching: the default BatchingPolicy (vLLM's iteration-level scheduling). Each plan
// takes, within max_num_seqs and max_num_batched_tokens:
//   1. the running sequences (decodes first in queue order, then unfinished prefill chunks),
//      preempting the newest when blocks run out;
//   2. if nothing was preempted, swapped sequences coming back (swap-in);
//   3. if nothing was preempted and no swapped sequence waits, waiting sequences in queue order,
//      each admitted with the prefix cache's longest match so that only its suffix is computed;
//      a prompt longer than the budget spans several plans (chunked prefill) unless disabled.
// n > 1 requests prefill sample 0's prompt (but its last token) once; the other samples are then
// forked from it, sharing its blocks copy-on-write. A plan of only decodes, with nothing waiting,
// covers num_scheduler_steps decode steps (multi-step).
//
//   ContinuousBatching policy({.config = &config, .registry = &registry, .kv = &kv,
//                              .preemptor = &preemptor, .max_model_len = 2048});
//   policy.Schedule(plan, num_in_flight_steps);
#pragma once

#include <cstdint>

#include "engine/batching_policy.h"
#include "engine/plan_builder.h"

namespace pagoda {

class ContinuousBatching final : public BatchingPolicy {
 public:
  explicit ContinuousBatching(const BatchingParts& parts) : BatchingPolicy(parts) {}

  void Schedule(PlanBuilder& plan, int64_t num_in_flight_steps) override;

 private:
  // Forks samples 1..n-1 of requests whose sample 0 computed its prompt but the last token.
  void ForkPendingSamples();
  // The decode steps this plan may cover: num_scheduler_steps when every running sequence
  // decodes and nothing waits, else 1.
  int32_t NumDecodeSteps() const;
  void ScheduleSwappedIn(PlanBuilder& plan, int64_t& token_budget);
  void ScheduleWaiting(PlanBuilder& plan, int64_t& token_budget);
};

}  // namespace pagoda
