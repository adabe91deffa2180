#include "engine/batching_policy.h"

#include <algorithm>

#include "common/step/stop_rules.h"

namespace pagoda {

BatchingPolicy::BatchingPolicy(const BatchingParts& parts)
    : config_(*parts.config),
      registry_(*parts.registry),
      kv_(*parts.kv),
      preemptor_(*parts.preemptor),
      max_model_len_(parts.max_model_len),
      proposer_(parts.config->speculative, parts.history) {}

bool BatchingPolicy::Speculates(const Sequence& seq) const {
  const SpeculativeConfig& spec = config_.speculative;
  return spec.enabled() && !seq.request->beam_search && !seq.params.disable_speculative_decoding &&
         (spec.disable_by_batch_size == 0 ||
          static_cast<int64_t>(registry_.running().size()) <= spec.disable_by_batch_size);
}

bool BatchingPolicy::MustWait(const Sequence& seq) const {
  return seq.num_pending_tokens > 0 && seq.num_draft_tokens_in_flight > 0;
}

bool BatchingPolicy::WaitsToLookUp(const Sequence& seq, bool any_waits) const {
  if (seq.num_pending_tokens == 0 || seq.speculation_pipelined_steps > 0 || !Speculates(seq)) {
    return false;
  }
  if (any_waits) return true;
  // (A draft model proposes on the workers, where the token is known: it never waits.)
  return config_.speculative.method == SpeculativeMethod::kNgram &&
         registry_.running().size() == 1 && seq.speculation_accepted_at >= 0 &&
         seq.num_output_tokens() - seq.speculation_accepted_at <= kLookupWaitTokens;
}

void BatchingPolicy::BackOffSpeculation(Sequence* seq) {
  seq->speculation_pipelined_steps = seq->speculation_backoff;
  seq->speculation_backoff = std::min(2 * seq->speculation_backoff, kMaxSpeculationBackoff);
}

void BatchingPolicy::AdaptSpeculation(Sequence* seq, int64_t num_drafts, int64_t accepted,
                                      int32_t max_tokens) {
  seq->speculative_tokens = static_cast<int32_t>(
      accepted == num_drafts
          ? std::min<int64_t>(max_tokens, 2 * std::max<int32_t>(seq->speculative_tokens, 1))
          : std::min<int64_t>(max_tokens, accepted + 1));
  // On text the proposer cannot predict, waiting for each verification costs the pipelining
  // and gains nothing. A single draft rejected (after a failure the length is one) backs off; a
  // first failure at a longer length does not: where a copied span ends, the next lookup often
  // finds the next one.
  if (accepted > 0) {
    seq->speculation_backoff = 1;
    seq->speculation_accepted_at = seq->num_output_tokens();
  } else if (num_drafts == 1) {
    BackOffSpeculation(seq);
  }
}

int64_t BatchingPolicy::AddDrafts(Sequence* seq, int64_t max_drafts) {
  if (seq->speculative_tokens < 0)
    seq->speculative_tokens = config_.speculative.num_speculative_tokens;
  max_drafts = std::min<int64_t>(max_drafts, seq->speculative_tokens);
  if (max_drafts <= 0 || !seq->on_workers) return 0;
  if (config_.speculative.method == SpeculativeMethod::kDraftModel) {
    // The workers' draft model proposes; the engine reserves the slots.
    if (!kv_.AllocateSlots(seq->handle, 1, max_drafts)) return 0;
    seq->num_worker_draft_tokens = static_cast<int32_t>(max_drafts);
    seq->num_draft_tokens_in_flight = max_drafts;
    return max_drafts;
  }
  // With its last token in flight (pipelined) the lookup over the known tokens proposes that
  // token too: it becomes the guard the drafts are verified behind (the workers drop them if the
  // token differs), so a lookup costs no wait, and a wrong guess no compute.
  const bool guessed = seq->num_pending_tokens > 0;
  std::vector<int32_t> drafts =
      proposer_.Propose(seq->token_ids, max_drafts + (guessed ? 1 : 0), guessed ? 1 : 0);
  int32_t guard = -1;
  if (guessed && !drafts.empty()) {
    guard = drafts.front();
    drafts.erase(drafts.begin());
  }
  const int64_t n = static_cast<int64_t>(drafts.size());
  if (n == 0 || !kv_.AllocateSlots(seq->handle, 1, n)) return 0;
  seq->draft_token_ids = std::move(drafts);
  seq->num_draft_tokens_in_flight = n;
  seq->draft_guard_token_id = guard;
  return n;
}

int64_t BatchingPolicy::RemainingTokens(const Sequence& seq) const {
  return StopRules(seq.params, /*eos_token_ids=*/{}, max_model_len_)
      .NumOutputsLeft(seq.num_expected_output_tokens(), seq.total_len());
}

void BatchingPolicy::MarkStarted(PlanBuilder& plan, Request* request) {
  if (registry_.MarkStarted(request)) plan.RecordStart(*request);
}

void BatchingPolicy::ScheduleRunning(PlanBuilder& plan, int64_t& budget) {
  const int32_t k = plan.num_steps();
  std::vector<Sequence*>& running = registry_.running();
  // A sequence whose drafts are in flight waits for its result (a verification yields an
  // unknown number of tokens). Every other one runs pipelined, proposing behind a guard while its
  // last token is in flight (AddDrafts) — unless another sequence waits this step anyway: then a
  // speculating one (not backing off) waits too, so that the batch stays whole (a step run for
  // part of the batch costs a whole pass over the weights) and it proposes from known tokens; a
  // sequence running alone also waits shortly after an accepted draft (WaitsToLookUp).
  const bool any_waits = config_.speculative.enabled() &&
                         std::any_of(running.begin(), running.end(),
                                     [this](const Sequence* s) { return MustWait(*s); });
  for (size_t i = 0; i < running.size(); ++i) {
    Sequence* seq = running[i];
    if (plan.num_seats() >= config_.max_num_seqs || budget <= 0) break;
    if (seq->beam_ready || (seq->request->beam_search && seq->num_pending_tokens > 0)) continue;
    if (MustWait(*seq) || WaitsToLookUp(*seq, any_waits)) {
      plan.HoldSeat();
      continue;
    }
    const int64_t size = static_cast<int64_t>(seq->token_ids.size());
    int64_t uncomputed = size - seq->num_computed_tokens;
    if (!seq->request->samples_forked && seq->index == 0) {
      uncomputed = std::min(uncomputed, seq->num_prompt_tokens - 1 - seq->num_computed_tokens);
    }
    const bool decode =
        seq->num_pending_tokens > 0 || (uncomputed == 1 && seq->num_output_tokens() > 0);
    int64_t num_tokens = 0;    // KV positions this plan computes
    int64_t num_first = 0;     // tokens of the first step
    int64_t num_expected = 0;  // samples expected
    int64_t num_drafts = 0;    // speculative decoding: draft tokens verified with the decode
    if (decode) {
      const int64_t remaining = RemainingTokens(*seq);
      if (remaining <= 0) continue;  // finishes when its in-flight result arrives
      num_tokens = std::min<int64_t>(k, remaining);
      num_first = 1;
      num_expected = num_tokens;
      if (Speculates(*seq)) {
        if (seq->speculation_pipelined_steps > 0) {
          --seq->speculation_pipelined_steps;
        } else if (seq->num_pending_tokens <= 1) {
          num_drafts = AddDrafts(seq, std::min(remaining, budget) - 1);
        }
      }
    } else {
      if (uncomputed <= 0) continue;
      num_tokens = std::min(uncomputed, budget);
      // A prompt that does not fit the budget waits unless it may be chunked. (Static batching's
      // budget is unbounded: its prompts always fit.)
      if (!config_.enable_chunked_prefill && num_tokens < uncomputed) continue;
      num_first = num_tokens;
      num_expected = seq->num_computed_tokens + num_tokens == size ? 1 : 0;
    }
    // Make room by preempting from the back: the lowest-priority, newest sequences. (Drafts
    // hold their slots already.)
    bool allocated = true;
    while (num_drafts == 0 && !kv_.AllocateSlots(seq->handle, num_tokens)) {
      Sequence* victim = running.back();
      preemptor_.Preempt(victim, plan);
      if (victim == seq) {
        allocated = false;
        break;
      }
    }
    if (!allocated) break;
    const int64_t computed_before = seq->num_computed_tokens;
    seq->num_computed_tokens += num_tokens;
    plan.Add(seq, computed_before, num_first + num_drafts, num_expected + num_drafts, decode);
    budget -= decode ? 1 + num_drafts : num_first;
  }
}

}  // namespace pagoda
