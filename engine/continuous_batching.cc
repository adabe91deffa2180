#include "engine/continuous_batching.h"

#include <algorithm>
#include <deque>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/check.h"

namespace pagoda {
namespace {

// Whether a queued sequence could be scheduled now (not waiting for an in-flight result or for
// its sibling beams).
template <typename Container>
bool AnyRunnable(const Container& seqs) {
  return std::any_of(seqs.begin(), seqs.end(), [](const Sequence* seq) {
    return seq->num_pending_tokens == 0 && !seq->beam_ready;
  });
}

}  // namespace

void ContinuousBatching::Schedule(PlanBuilder& plan, int64_t num_in_flight_steps) {
  int64_t budget = config_.max_num_batched_tokens;
  ForkPendingSamples();
  plan.set_num_steps(NumDecodeSteps());
  ScheduleRunning(plan, budget);
  if (!plan.preempted_any()) ScheduleSwappedIn(plan, budget);
  if (!plan.preempted_any() && !AnyRunnable(registry_.swapped())) ScheduleWaiting(plan, budget);
  // Nothing can run and nothing is in flight, yet sequences wait: the blocks are held by idle
  // running sequences (beams waiting for their siblings). Preempt them until one can run.
  while (plan.num_seqs() == 0 && num_in_flight_steps == 0 && !registry_.running().empty() &&
         (AnyRunnable(registry_.waiting()) || AnyRunnable(registry_.swapped()))) {
    preemptor_.Preempt(registry_.running().back(), plan);
    ScheduleSwappedIn(plan, budget);
    if (!AnyRunnable(registry_.swapped())) ScheduleWaiting(plan, budget);
  }
}

int32_t ContinuousBatching::NumDecodeSteps() const {
  int32_t k = std::max<int32_t>(1, config_.num_scheduler_steps);
  if (k > 1 && (!registry_.waiting().empty() || !registry_.swapped().empty() ||
                !registry_.fork_pending().empty())) {
    k = 1;
  }
  const std::vector<Sequence*>& running = registry_.running();
  for (size_t i = 0; k > 1 && i < running.size(); ++i) {
    const Sequence& seq = *running[i];
    const int64_t uncomputed = static_cast<int64_t>(seq.token_ids.size()) - seq.num_computed_tokens;
    const bool decodes =
        seq.num_pending_tokens > 0 || (uncomputed == 1 && seq.num_output_tokens() > 0);
    if (seq.request->beam_search || !decodes) k = 1;
  }
  return k;
}

void ContinuousBatching::ForkPendingSamples() {
  std::vector<Request*>& pending = registry_.fork_pending();
  for (auto it = pending.begin(); it != pending.end();) {
    Request* req = *it;
    Sequence* parent = req->seqs[0].get();
    if (parent->finished()) {
      it = pending.erase(it);
      continue;
    }
    if (parent->status != SequenceStatus::kRunning || !kv_.Contains(parent->handle) ||
        parent->num_computed_tokens != parent->num_prompt_tokens - 1) {
      ++it;
      continue;
    }
    for (size_t i = 1; i < req->seqs.size(); ++i) {
      Sequence* child = req->seqs[i].get();
      if (child->finished()) continue;
      const absl::Status s = kv_.Fork(parent->handle, child->handle);
      PAGODA_CHECK(s.ok()) << "fork of " << child->seq_id << " failed: " << s;
      child->num_computed_tokens = parent->num_computed_tokens;
      registry_.InsertRunning(child);
    }
    req->samples_forked = true;
    it = pending.erase(it);
  }
}

void ContinuousBatching::ScheduleSwappedIn(PlanBuilder& plan, int64_t& budget) {
  std::vector<Sequence*>& swapped = registry_.swapped();
  for (auto it = swapped.begin(); it != swapped.end();) {
    Sequence* seq = *it;
    if (plan.num_seats() >= config_.max_num_seqs || budget <= 0) break;
    if (seq->num_pending_tokens > 0 || seq->beam_ready) {
      ++it;
      continue;
    }
    if (!kv_.CanSwapIn(seq->handle)) break;
    absl::StatusOr<std::vector<BlockPair>> pairs = kv_.SwapIn(seq->handle);
    if (!pairs.ok()) break;
    plan.AddSwapIns(*pairs);
    it = swapped.erase(it);
    registry_.InsertRunning(seq);
    seq->num_computed_tokens = kv_.NumTokens(seq->handle);
    const int64_t size = static_cast<int64_t>(seq->token_ids.size());
    int64_t n = std::min(size - seq->num_computed_tokens, budget);
    if (n > 0 && !kv_.AllocateSlots(seq->handle, n)) n = 0;
    const int64_t computed_before = seq->num_computed_tokens;
    seq->num_computed_tokens += n;
    const bool decode = n == 1 && seq->num_output_tokens() > 0;
    plan.Add(seq, computed_before, n, seq->num_computed_tokens == size ? 1 : 0, decode);
    budget -= n;
  }
}

void ContinuousBatching::ScheduleWaiting(PlanBuilder& plan, int64_t& budget) {
  std::deque<Sequence*>& waiting = registry_.waiting();
  for (auto it = waiting.begin(); it != waiting.end();) {
    Sequence* seq = *it;
    if (plan.num_seats() >= config_.max_num_seqs || budget <= 0) break;
    if (seq->num_pending_tokens > 0 || seq->beam_ready) {
      ++it;
      continue;
    }
    const int64_t size = static_cast<int64_t>(seq->token_ids.size());
    const PrefixMatch match = kv_.GetComputedBlocks(seq->token_ids);
    int64_t target = size;
    if (!seq->request->samples_forked && seq->index == 0) target = seq->num_prompt_tokens - 1;
    const int64_t to_compute = std::max<int64_t>(0, target - match.num_computed_tokens);
    const int64_t n = std::min(to_compute, budget);
    if (!config_.enable_chunked_prefill && n < to_compute) break;
    if (!kv_.AllocateSlots(seq->handle, n, 0, &match)) break;
    it = waiting.erase(it);
    registry_.InsertRunning(seq);
    MarkStarted(plan, seq->request);
    seq->num_computed_tokens = match.num_computed_tokens + n;
    plan.Add(seq, match.num_computed_tokens, n, seq->num_computed_tokens == size ? 1 : 0, false);
    budget -= n;
  }
}

}  // namespace pagoda
