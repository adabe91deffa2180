// EngineRequest: a validated generation request as the engine core receives it, and the
// Scheduler's internal view of it: a Request (one group) with its Sequences, one per sample
// (n > 1) or per beam (beam search).
//
//   EngineRequest request{.request_id = "r1", .prompt_token_ids = ids, .params = params,
//                         .seed = params.seed.value_or(rng()), .arrival_time_s = clock.Now()};
//   RETURN_IF_ERROR(scheduler.AddRequest(std::move(request)));
//
// A request moved from a failed replica carries the outputs it already streamed
// (resumed_output_token_ids): it enters like a sequence preempted by recompute, prompt + those
// outputs prefilled (prefix cache included), and its stream continues after them.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/sampling_params.h"
#include "engine/finish_reason.h"
#include "engine/kv_cache_manager.h"

namespace pagoda {

struct EngineRequest {
  std::string request_id;
  std::vector<int32_t> prompt_token_ids;
  SamplingParams params;
  int32_t priority = 0;  // lower value = served first, like vLLM
  uint64_t seed = 0;     // resolved: params.seed, or one the engine drew
  double arrival_time_s = 0;
  /// Failover: outputs the request already produced (and streamed) elsewhere. The engine
  /// prefills prompt + these, continues sampling at output index resumed_output_token_ids.size()
  /// (so seeded draws, penalties, min/max_tokens continue as if uninterrupted) and streams only
  /// what comes after them. n == 1 and no beam search only.
  std::vector<int32_t> resumed_output_token_ids;
  double resumed_cumulative_logprob = 0;  // when the request asked for logprobs
};

/// The seed of sample `index` of a request: the request's own for sample 0 (so n = 1 draws what
/// a plain request draws), a mix of (seed, index) for the others.
uint64_t SampleSeed(uint64_t request_seed, int32_t index);

enum class SequenceStatus {
  kWaiting,   // queued, or preempted by recompute (holds no blocks)
  kRunning,   // holds device blocks; the workers know it once scheduled
  kSwapped,   // preempted by swapping: its blocks are on the host
  kFinished,  // done; may still hold blocks until the next plan releases them
};

struct Request;

struct Sequence {
  std::string seq_id;  // request_id + "#" + index
  Request* request = nullptr;
  int32_t index = 0;
  SeqHandle handle = 0;  // its KVCacheManager handle
  uint64_t seed = 0;
  SamplingParams params;  // the request's, with per-sequence changes (beam search logprobs)
  std::vector<int32_t> token_ids;  // prompt, then the outputs known so far
  int64_t num_prompt_tokens = 0;
  /// Tokens expected from in-flight plans, not applied yet (async scheduling).
  int64_t num_pending_tokens = 0;
  /// Tokens whose KV is computed or scheduled (the KV manager's NumTokens while it holds blocks).
  int64_t num_computed_tokens = 0;
  SequenceStatus status = SequenceStatus::kWaiting;
  std::optional<FinishReason> finish_reason;
  std::optional<int32_t> stop_token_id;
  bool on_workers = false;  // the workers hold its state (until a finished_seq_ids drops it)
  bool released = false;    // finished and released from the KV manager and the workers
  double cumulative_logprob = 0;
  /// Beam search: the engine chose these tokens to append before the next compute, in place of
  /// the worker's pending sample (CachedSequence::replace_last_token_ids).
  std::vector<int32_t> replace_last_token_ids;
  /// Beam search: top candidates of the last sample, (token, logprob).
  std::vector<std::pair<int32_t, float>> last_candidates;
  /// Beam search: last_candidates hold a sample the beam search has not decided on yet.
  bool beam_ready = false;
  /// Beam search: a beam that lost; finished without output.
  bool dropped = false;
  int64_t last_scheduled_step = -1;
  /// Speculative decoding: the proposals of the plan being built (sent as
  /// CachedSequence::draft_token_ids), then how many are in flight (their KV slots are reserved
  /// as lookahead and committed as far as the result accepts them; 0 after a preemption).
  std::vector<int32_t> draft_token_ids;
  /// A draft model proposes on the workers instead: how many (CachedSequence's
  /// num_worker_draft_tokens) for the plan being built.
  int32_t num_worker_draft_tokens = 0;
  int64_t num_draft_tokens_in_flight = 0;
  /// Guarded drafts (CachedSequence::draft_guard_token_id): proposed, with the step that last
  /// scheduled the sequence, while its previous token was in flight, on the guess that it is this
  /// token. Resolved when that token arrives (a wrong guess: the workers decode it alone); -1:
  /// none.
  int32_t draft_guard_token_id = -1;
  /// Adaptive proposal length: one more than the drafts accepted last time, capped at
  /// num_speculative_tokens.
  int32_t speculative_tokens = -1;
  /// Back-off: after a verification of a single draft that was rejected the sequence decodes
  /// without proposals for this many steps; the count doubles on each such failure (to
  /// kMaxSpeculationBackoff) and drops to 1 on an accepted draft.
  int32_t speculation_pipelined_steps = 0;
  int32_t speculation_backoff = 1;
  /// Outputs known when a draft of this sequence was last accepted (-1: never): shortly after,
  /// the lookups are worth a wait for the token in flight (BatchingPolicy::WaitsToLookUp).
  int64_t speculation_accepted_at = -1;

  /// Prompt + known outputs + expected in-flight outputs.
  int64_t total_len() const { return static_cast<int64_t>(token_ids.size()) + num_pending_tokens; }
  int64_t num_output_tokens() const {
    return static_cast<int64_t>(token_ids.size()) - num_prompt_tokens;
  }
  int64_t num_expected_output_tokens() const { return num_output_tokens() + num_pending_tokens; }
  bool finished() const { return status == SequenceStatus::kFinished; }
};

/// A beam that ended (EOS, max_tokens), kept as tokens: it needs no blocks.
struct FinishedBeam {
  std::vector<int32_t> output_token_ids;
  double cumulative_logprob = 0;
  double score = 0;  // cumulative_logprob / length^length_penalty
  FinishReason finish_reason = FinishReason::kLength;
  std::optional<int32_t> stop_token_id;
};

struct Request {
  EngineRequest request;
  /// Admission order (ties broken by it); unique, so it keys the request inside the scheduler
  /// while its id may already name a newer request.
  uint64_t arrival_order = 0;
  bool beam_search = false;
  /// Samples 1..n-1 are forked from sample 0 once its prompt (but the last token) is computed.
  bool samples_forked = false;
  int32_t num_unfinished = 0;
  /// Plans in flight that name a sequence of this request: it stays alive until they are
  /// applied.
  int32_t num_in_flight_refs = 0;
  std::vector<std::unique_ptr<Sequence>> seqs;
  std::vector<FinishedBeam> finished_beams;  // beam search
  int32_t next_beam_index = 0;
  bool started = false;  // a sequence was admitted once (it no longer counts as waiting)

  const std::string& id() const { return request.request_id; }
  int32_t priority() const { return request.priority; }
};

}  // namespace pagoda
