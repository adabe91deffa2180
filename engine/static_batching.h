// StaticBatching: the BatchingPolicy of EngineConfig::scheduler = kStatic — fixed batches, as
// served before continuous batching, kept as a baseline for benchmarks. A batch is formed only
// when no sequence runs: whole prompts in queue order, up to max_num_seqs, each reserving the KV
// slots of its full length (prompt + max_tokens) up front; the batch then decodes until every
// sequence in it has finished. No chunked prefill, no sample forking, no beam search (admission
// refuses it); a running batch never runs out of blocks, as it reserved them all.
//
//   StaticBatching policy({.config = &config, .registry = &registry, .kv = &kv,
//                          .preemptor = &preemptor, .max_model_len = 2048});
//   policy.Schedule(plan, num_in_flight_steps);
#pragma once

#include <cstdint>

#include "engine/batching_policy.h"
#include "engine/plan_builder.h"

namespace pagoda {

class StaticBatching final : public BatchingPolicy {
 public:
  explicit StaticBatching(const BatchingParts& parts) : BatchingPolicy(parts) {}

  void Schedule(PlanBuilder& plan, int64_t num_in_flight_steps) override;
};

}  // namespace pagoda
