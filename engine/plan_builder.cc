#include "engine/plan_builder.h"

#include <utility>

namespace pagoda {

void PlanBuilder::Begin(int64_t step_id) {
  step_ = ScheduledStep();
  step_.plan.step_id = step_id;
  new_seqs_.clear();
  cached_seqs_.clear();
  samples_.clear();
  num_seqs_ = 0;
  num_held_seats_ = 0;
  num_steps_ = 1;
}

void PlanBuilder::Add(Sequence* seq, int64_t computed_before, int64_t num_first_step_tokens,
                      int64_t num_expected_samples, bool is_decode) {
  kv_->CacheBlocks(seq->handle, seq->token_ids);
  if (!seq->on_workers) {
    step_.plan.new_sequences.push_back({.seq_id = seq->seq_id,
                                        .token_ids = seq->token_ids,
                                        .num_prompt_tokens = seq->num_prompt_tokens,
                                        .num_computed_tokens = computed_before,
                                        .num_scheduled_tokens = num_first_step_tokens,
                                        .sampling_params = seq->params,
                                        .seed = seq->seed});
    new_seqs_.push_back(seq);
    seq->on_workers = true;
    seq->replace_last_token_ids.clear();
  } else {
    // A guard goes with the drafts it was guessed for; the scheduler keeps it until it resolves.
    const int32_t guard = seq->draft_token_ids.empty() ? -1 : seq->draft_guard_token_id;
    step_.plan.cached_sequences.push_back(
        {.seq_id = seq->seq_id,
         .num_scheduled_tokens = num_first_step_tokens,
         .replace_last_token_ids = std::exchange(seq->replace_last_token_ids, {}),
         .draft_token_ids = std::exchange(seq->draft_token_ids, {}),
         .draft_guard_token_id = guard,
         .num_worker_draft_tokens = std::exchange(seq->num_worker_draft_tokens, 0)});
    cached_seqs_.push_back(seq);
  }
  seq->last_scheduled_step = step_.plan.step_id;
  ++num_seqs_;
  if (num_expected_samples > 0) {
    seq->num_pending_tokens += num_expected_samples;
    samples_.emplace_back(seq, num_expected_samples);
  }
  step_.sequences.push_back({.seq_id = seq->seq_id,
                             .request_id = seq->request->id(),
                             .index = seq->index,
                             .num_scheduled_tokens = num_first_step_tokens,
                             .is_prefill = !is_decode,
                             .samples = num_expected_samples > 0});
  if (is_decode) {
    step_.num_decode_tokens += num_first_step_tokens;
  } else {
    step_.num_prefill_tokens += num_first_step_tokens;
  }
}

void PlanBuilder::DropFromWorkers(Sequence* seq) {
  if (seq->on_workers) step_.plan.finished_seq_ids.push_back(seq->seq_id);
  seq->on_workers = false;
}

void PlanBuilder::AddSwapOuts(const std::vector<BlockPair>& device_to_host) {
  step_.plan.swap_out.insert(step_.plan.swap_out.end(), device_to_host.begin(),
                             device_to_host.end());
}

void PlanBuilder::AddSwapIns(const std::vector<BlockPair>& host_to_device) {
  step_.plan.swap_in.insert(step_.plan.swap_in.end(), host_to_device.begin(), host_to_device.end());
}

ScheduledStep PlanBuilder::Finish() {
  const int num_groups = kv_->num_groups();
  for (size_t i = 0; i < new_seqs_.size(); ++i) {
    NewSequence& seq = step_.plan.new_sequences[i];
    const SeqHandle h = new_seqs_[i]->handle;
    seq.block_ids = kv_->TakeNewBlockIds(h);
    for (int g = 1; g < num_groups; ++g) seq.more_block_ids.push_back(kv_->TakeNewBlockIds(h, g));
  }
  for (size_t i = 0; i < cached_seqs_.size(); ++i) {
    CachedSequence& seq = step_.plan.cached_sequences[i];
    const SeqHandle h = cached_seqs_[i]->handle;
    seq.new_block_ids = kv_->TakeNewBlockIds(h);
    seq.replaced_block_ids = kv_->TakeReplacedBlockIds(h);
    for (int g = 1; g < num_groups; ++g) {
      seq.more_groups.push_back({.replaced_block_ids = kv_->TakeReplacedBlockIds(h, g),
                                 .new_block_ids = kv_->TakeNewBlockIds(h, g)});
    }
  }
  step_.plan.block_copies = kv_->TakeBlockCopies();
  const bool all_decode = step_.num_prefill_tokens == 0 && !step_.sequences.empty();
  step_.plan.num_steps = all_decode ? num_steps_ : 1;
  return std::exchange(step_, ScheduledStep());
}

}  // namespace pagoda
