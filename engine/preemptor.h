// Preemptor: takes a running sequence off the device when the KV blocks run out, in the
// configured PreemptionMode. Recompute frees its blocks and queues it as waiting again (it is
// re-prefilled later, its outputs kept); swap moves its blocks to host memory (the plan's
// swap_out) and queues it as swapped, falling back to recompute when the host has no room. Either
// way the workers drop the sequence's state in this plan.
//
//   while (!kv.AllocateSlots(seq->handle, n)) preemptor.Preempt(registry.running().back(), plan);
#pragma once

#include <cstdint>

#include "engine/engine_config.h"
#include "engine/kv_cache_manager.h"
#include "engine/plan_builder.h"
#include "engine/request.h"
#include "engine/sequence_registry.h"

namespace pagoda {

class Preemptor {
 public:
  /// `registry` and `kv` must outlive the preemptor.
  Preemptor(PreemptionMode mode, SequenceRegistry* registry, KVCacheManager* kv)
      : mode_(mode), registry_(registry), kv_(kv) {}

  /// Preempts `seq`, a running sequence, recording it in `plan`.
  void Preempt(Sequence* seq, PlanBuilder& plan);

  /// Preemptions so far (pagoda:num_preemptions_total).
  int64_t num_preemptions() const { return num_preemptions_; }

 private:
  const PreemptionMode mode_;
  SequenceRegistry* const registry_;
  KVCacheManager* const kv_;
  int64_t num_preemptions_ = 0;
};

}  // namespace pagoda
