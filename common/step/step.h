// The plain structs of one engine step: the StepPlan the engine core sends to every rank of a
// replica, and the StepResult that comes back. They live in common/ so the engine core (router/)
// and the worker runtime (worker/) share them without depending on each other; the gRPC messages
// of pagoda.internal are a wire encoding of these structs.
//
// Workers keep per-request state (token ids, block table, sampling state) between steps, so a
// running request costs only its delta on the wire. Sampled tokens stay on the workers as the
// next step's input; the engine may plan step n+1 before it has read step n's tokens.
//
// Order in which a worker applies a plan:
//   1. drop the state of finished_request_ids (finished, aborted or preempted sequences);
//   2. swap_out (device -> host), then swap_in (host -> device), then block_copies (CoW);
//   3. add new_requests; apply cached_requests' deltas (replaced blocks, new blocks,
//      router-chosen tokens);
//   4. run num_steps forward passes over the scheduled tokens, sampling where a sequence
//      reaches the end of its known tokens.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/sampling_params.h"

namespace pagoda {

/// A block-table entry whose block the engine gave back because it lies wholly before the window
/// of every later query: models whose every layer attends to a sliding window
/// (ExecutorInfo::sliding_window), or the tables of a sliding KV cache group
/// (ExecutorInfo::kv_group_windows). Workers never read it; the entries of a table they already
/// hold are not updated (the positions there are never read again either).
inline constexpr int32_t kFreedBlockId = INT32_MIN;

/// A sequence the workers have no state for: a new request, one resumed after preemption
/// (recompute) or failover, or a beam forked from another.
struct NewSequence {
  std::string seq_id;                // unique among live sequences of the replica
  std::vector<int32_t> token_ids;    // prompt followed by the outputs generated so far
  int64_t num_prompt_tokens = 0;     // token_ids[num_prompt_tokens:] are outputs (penalties)
  int64_t num_computed_tokens = 0;   // leading tokens whose K/V are already in the blocks
  int64_t num_scheduled_tokens = 0;  // tokens to compute in this step, from num_computed_tokens
  std::vector<int32_t> block_ids;    // the whole block table (leading kFreedBlockId possible)
  /// KV cache groups 1..G-1 (ExecutorInfo::kv_group_windows): their whole tables, as block_ids
  /// is group 0's. Empty with one group.
  std::vector<std::vector<int32_t>> more_block_ids;
  SamplingParams sampling_params;
  uint64_t seed = 0;  // resolved seed; the draw for output i depends only on (seed, i)
};

/// The block-table delta of one KV cache group of a sequence the workers hold.
struct GroupBlockDelta {
  std::vector<std::pair<int32_t, int32_t>> replaced_block_ids;  // as CachedSequence's
  std::vector<int32_t> new_block_ids;
};

/// The delta of a sequence the workers already hold.
struct CachedSequence {
  std::string seq_id;
  /// (index in the block table, new block id): entries copy-on-write moved to a fresh block,
  /// applied before new_block_ids.
  std::vector<std::pair<int32_t, int32_t>> replaced_block_ids;
  std::vector<int32_t> new_block_ids;  // appended to the block table
  /// KV cache groups 1..G-1: their deltas, as the two fields above are group 0's. Empty with one
  /// group.
  std::vector<GroupBlockDelta> more_groups;
  int64_t num_scheduled_tokens = 0;  // tokens to compute in this step
  /// Tokens chosen by the engine (beam search) to append before computing, in place of the
  /// worker's own last sample, which is then discarded. Empty for sampled sequences.
  std::vector<int32_t> replace_last_token_ids;
  /// Speculative decoding: tokens proposed to follow the worker's pending sample. They are
  /// computed with it in one chunk (num_scheduled_tokens = 1 + their count, a one-step plan),
  /// the sequence samples at each of those positions with its own rules and draws, and keeps
  /// the proposals that equal its samples, plus the first sample that differs (or the one
  /// after the last proposal): 1 to count + 1 tokens, exactly the tokens it would have
  /// sampled one step at a time. The rejected proposals' KV slots are garbage the next step
  /// overwrites.
  std::vector<int32_t> draft_token_ids;
  /// Guarded drafts: >= 0 when the engine proposed draft_token_ids before it knew the pending
  /// sample (the n-gram lookup guessed that sample too). The worker verifies them only if its
  /// pending sample equals this token; otherwise it drops them and decodes the pending sample
  /// alone (one row, one output), as the engine concludes too once it learns that sample.
  int32_t draft_guard_token_id = -1;
  /// Speculative decoding with a draft model: the worker's draft model proposes this many
  /// tokens greedily after the pending sample, which are then verified exactly like
  /// draft_token_ids (the two are exclusive; num_scheduled_tokens = 1 + this).
  int32_t num_worker_draft_tokens = 0;
};

/// Whether `delta`'s drafts stand after the worker's pending sample `pending_sample`: they carry
/// no guard, or the guard is that sample.
inline bool DraftGuardHolds(const CachedSequence& delta, int32_t pending_sample) {
  return delta.draft_guard_token_id < 0 || delta.draft_guard_token_id == pending_sample;
}

struct StepPlan {
  int64_t step_id = 0;
  std::vector<NewSequence> new_sequences;
  std::vector<CachedSequence> cached_sequences;
  std::vector<std::string> finished_seq_ids;
  std::vector<std::pair<int32_t, int32_t>> swap_out;      // (device block, host block)
  std::vector<std::pair<int32_t, int32_t>> swap_in;       // (host block, device block)
  std::vector<std::pair<int32_t, int32_t>> block_copies;  // (src, dst) device blocks
  /// Decode steps to run back to back (multi-step); > 1 only when every scheduled sequence
  /// decodes one token per step and holds blocks for all of them.
  int32_t num_steps = 1;
};

/// What one sequence produced in a step: one entry per forward pass that sampled it (up to
/// num_steps; fewer when the worker saw it stop on a stop token or max_tokens), or, for a
/// sequence with draft tokens, its accepted drafts and the sample after them.
struct SequenceOutput {
  std::string seq_id;
  std::vector<int32_t> token_ids;
  std::vector<float> logprobs;  // per token, when sampling_params.logprobs >= 0
  std::vector<std::vector<std::pair<int32_t, float>>> top_logprobs;  // per token
};

struct StepResult {
  int64_t step_id = 0;
  std::vector<SequenceOutput> outputs;  // only sequences that sampled
};

}  // namespace pagoda
