#include "engine/preemptor.h"

#include <vector>

#include "absl/status/statusor.h"

namespace pagoda {

void Preemptor::Preempt(Sequence* seq, PlanBuilder& plan) {
  registry_->RemoveFromQueue(seq);
  ++num_preemptions_;
  plan.RecordPreemption(*seq);
  seq->replace_last_token_ids.clear();
  seq->draft_token_ids.clear();
  seq->num_worker_draft_tokens = 0;
  seq->num_draft_tokens_in_flight = 0;
  seq->draft_guard_token_id = -1;
  bool swapped = false;
  if (mode_ == PreemptionMode::kSwap && kv_->host_pool().num_blocks() > 0) {
    absl::StatusOr<std::vector<BlockPair>> pairs = kv_->SwapOut(seq->handle);
    if (pairs.ok()) {
      plan.AddSwapOuts(*pairs);
      registry_->InsertSwapped(seq);
      swapped = true;
    }
  }
  if (!swapped) {
    kv_->Free(seq->handle);
    seq->num_computed_tokens = 0;
    registry_->InsertWaiting(seq);
  }
  plan.DropFromWorkers(seq);
}

}  // namespace pagoda
