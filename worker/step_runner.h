// StepRunner: the worker runtime that applies StepPlans (common/step.h) to one model replica:
// it keeps per-sequence state between steps (token ids, computed count, block table, sampling
// state), performs swaps and block copies, runs the forward passes through a ModelRunner and
// samples. Synchronous and single-threaded: the InProcessExecutor (and a gRPC worker service)
// own one and feed it plans in order.
//
// Structured output: a constrained sequence (SamplingParams::constrained()) gets a TokenMatcher
// when it arrives (its grammar compiled through the runner's GrammarCache, its output tokens so
// far replayed, so a recomputed or failed-over sequence resumes where it was); each sampling
// masks its logits with the matcher's bitmask (EOS only where the grammar accepts) and advances
// it by the sampled token. The mask is computed synchronously before sampling.
//
// Speculative decoding: a sequence's drafts (the plan's draft_token_ids, or proposals of the
// worker's DraftModel when the plan asks for num_worker_draft_tokens) are computed with its
// pending sample in one chunk and verified row by row (RunPass); guarded drafts only when that
// sample is the token the engine guessed (CachedSequence::draft_guard_token_id), else they are
// dropped. Copies and swaps are mirrored on the draft model's cache.
//
// A plan is validated in full before anything changes; an invalid plan is InvalidArgument
// naming the problem and leaves every sequence, block and swap slot as it was. That check, once
// per plan, is the worker's only one: the ModelRunner and the kernels trust the batches of its
// passes (ModelRunner::ExecuteValidated).
//
//   ASSIGN_OR_RETURN(auto runner, ModelRunner::Create(config, std::move(weights),
//                                                     {.num_blocks = 512, .block_size = 16}));
//   ASSIGN_OR_RETURN(auto steps, StepRunner::Create(std::move(runner), {.num_host_blocks = 64}));
//   ASSIGN_OR_RETURN(StepResult result, steps->Apply(plan));
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/step/step.h"
#include "common/tokenizer/tokenizer.h"
#include "structured/grammar_cache.h"
#include "structured/token_matcher.h"
#include "structured/token_vocabulary.h"
#include "worker/device_sampler.h"
#include "worker/draft_model.h"
#include "worker/kv_cache.h"
#include "worker/model_runner.h"
#include "worker/sampler.h"

namespace pagoda {

/// The model's tokenizer, loaded when the first constrained sequence arrives.
using TokenizerLoader = std::function<absl::StatusOr<std::unique_ptr<Tokenizer>>()>;

struct StepRunnerOptions {
  /// Host-memory blocks for swapped-out sequences (same per-layer K/V shape as the device
  /// blocks); 0 disables swapping.
  int64_t num_host_blocks = 0;
  /// End-of-sequence ids besides the model config's eos_token_ids (e.g. the tokenizer's).
  std::vector<int32_t> extra_eos_token_ids;
  SamplerOptions sampler;
  /// Structured output: the vocabulary of the grammars' masks comes from this tokenizer, built
  /// once (stop ids: the EOS ids above). Null: constrained sequences are refused.
  TokenizerLoader load_tokenizer;
  size_t grammar_cache_bytes = size_t{256} << 20;
};

class StepRunner {
 public:
  /// `draft`: speculative decoding's draft model (worker/draft_model.h), its cache shaped like
  /// the runner's in blocks and its host blocks like options.num_host_blocks; null for none.
  static absl::StatusOr<std::unique_ptr<StepRunner>> Create(
      std::unique_ptr<ModelRunner> runner, const StepRunnerOptions& options,
      std::unique_ptr<DraftModel> draft = nullptr);

  /// Applies one plan in the order common/step.h documents and returns what was sampled.
  /// InvalidArgument (state untouched) for a malformed plan; any other error leaves the state
  /// unknown.
  absl::StatusOr<StepResult> Apply(const StepPlan& plan);

  /// The tokens a live sequence holds (prompt, outputs, the pending sample); nullptr if unknown.
  const std::vector<int32_t>* token_ids(const std::string& seq_id) const;
  int64_t num_sequences() const { return static_cast<int64_t>(seqs_.size()); }
  /// Distinct device blocks in live sequences' block tables (shared prefix blocks count once);
  /// O(blocks held), for metrics.
  int64_t num_used_device_blocks() const;
  int64_t num_device_blocks() const { return runner_->num_blocks(); }
  int64_t num_host_blocks() const { return host_cache_ ? host_cache_->shape().num_blocks : 0; }
  int64_t block_size() const { return runner_->block_size(); }
  const ModelConfig& config() const { return runner_->config(); }
  /// > 0: every layer of the model attends to at most this many last positions and there is no
  /// draft model, so the engine may free blocks behind it (ExecutorInfo::sliding_window).
  int64_t sliding_window() const { return sliding_window_; }
  /// The windows of the runner's KV cache groups when it has more than one
  /// (ExecutorInfo::kv_group_windows), else empty.
  const std::vector<int64_t>& kv_group_windows() const { return kv_group_windows_; }
  const std::vector<int32_t>& eos_token_ids() const { return eos_token_ids_; }

 private:
  struct Sequence {
    std::vector<int32_t> token_ids;  // prompt, then outputs; the tail may be uncomputed
    int64_t num_prompt_tokens = 0;
    int64_t num_computed_tokens = 0;
    std::vector<int32_t> block_table;
    std::vector<std::vector<int32_t>> more_block_tables;  // KV cache groups 1..G-1
    SamplingParams params;
    uint64_t seed = 0;
    // Structured output: advanced by every output token; null when unconstrained.
    std::unique_ptr<structured::TokenMatcher> matcher;
    std::vector<uint32_t> bitmask;  // the next token's mask (scratch)
    // The last token was sampled here (not chosen by the engine); replace_last_token_ids
    // discards it while it is still uncomputed.
    bool last_token_sampled = false;
    // Speculative decoding: the plan's draft tokens, appended to token_ids until the pass
    // that verifies them keeps the accepted ones.
    std::vector<int32_t> drafts;
    int64_t num_matcher_drafts = 0;  // drafts the matcher accepted while masking their rows
    // Draft model: leading positions whose draft K/V is valid (<= num_computed_tokens).
    int64_t num_draft_computed = 0;

    int64_t num_output_tokens() const {
      return static_cast<int64_t>(token_ids.size()) - num_prompt_tokens;
    }
    bool has_pending_sample() const {
      return last_token_sampled && num_computed_tokens < static_cast<int64_t>(token_ids.size());
    }
  };

  // One sequence taking part in a forward pass, and how many of its tokens it computes.
  struct PassEntry {
    Sequence* seq = nullptr;
    const std::string* seq_id = nullptr;
    int64_t num_tokens = 0;
    int64_t output_index = -1;  // into the StepResult's outputs; -1 until it samples
  };

  StepRunner(std::unique_ptr<ModelRunner> runner, std::optional<KvCache> host_cache,
             std::vector<int32_t> eos_token_ids, const StepRunnerOptions& options,
             std::unique_ptr<DraftModel> draft)
      : runner_(std::move(runner)),
        host_cache_(std::move(host_cache)),
        draft_(std::move(draft)),
        eos_token_ids_(std::move(eos_token_ids)),
        sampler_(options.sampler),
        load_tokenizer_(options.load_tokenizer),
        grammar_cache_(options.grammar_cache_bytes) {}

  absl::Status Validate(const StepPlan& plan) const;
  /// Every id names a device block, except that entries at table indexes below
  /// FreeableBlocks(num_computed_tokens) may be kFreedBlockId; block_ids[0] is table entry
  /// `first_index`.
  absl::Status ValidateBlockIds(absl::Span<const int32_t> block_ids, const std::string& what,
                                int64_t first_index = 0, int64_t num_computed_tokens = 0,
                                int group = 0) const;
  /// Leading block-table entries of KV cache group `group` the engine may have freed behind the
  /// sliding window of a sequence whose next position is num_computed_tokens (0 without one).
  int64_t FreeableBlocks(int64_t num_computed_tokens, int group = 0) const;
  /// The KV cache groups 1..G-1 of a plan's sequence: one table (new) or delta (cached) each,
  /// valid ids, the tables as long as group 0's.
  absl::Status ValidateMoreGroups(const NewSequence& seq) const;
  absl::Status ValidateMoreGroups(const CachedSequence& delta, const Sequence& seq) const;
  absl::Status ValidateTokenIds(absl::Span<const int32_t> token_ids, const std::string& what) const;
  absl::Status ValidateSwapsAndCopies(const StepPlan& plan) const;
  absl::Status ValidateDrafts(const StepPlan& plan, const CachedSequence& delta,
                              const Sequence& seq) const;
  // Positions [0, num_tokens) must fit the block table and the model.
  absl::Status ValidateCapacity(const std::string& seq_id, int64_t num_tokens,
                                int64_t num_blocks) const;

  absl::Status Swap(const StepPlan& plan);
  // The draft model's proposals for the plan's sequences that ask for them, appended to their
  // tokens as drafts.
  absl::Status ProposeDrafts(const StepPlan& plan);
  // The matchers of the plan's new constrained sequences, their outputs replayed; before any
  // change, so that a bad constraint is an InvalidArgument that leaves the state as it was.
  absl::StatusOr<absl::flat_hash_map<std::string, std::unique_ptr<structured::TokenMatcher>>>
  CreateMatchers(const StepPlan& plan);
  void AddAndUpdateSequences(
      const StepPlan& plan,
      absl::flat_hash_map<std::string, std::unique_ptr<structured::TokenMatcher>> matchers);
  // Runs one forward pass over `pass`, samples the sequences that reach the end of their known
  // tokens, appends each sample to `result`, and returns the entries that sampled.
  absl::StatusOr<std::vector<PassEntry>> RunPass(const std::vector<PassEntry>& pass,
                                                 StepResult& result);
  // mask <- the tokens the sequence's matcher allows next (EOS alone once it terminated).
  void FillBitmask(Sequence& seq, const std::string& seq_id, absl::Span<uint32_t> mask);
  bool IsStop(const Sequence& seq, int32_t token) const;
  bool CanDecodeAgain(const Sequence& seq) const;

  std::unique_ptr<ModelRunner> runner_;
  std::optional<KvCache> host_cache_;  // swap space; absent when num_host_blocks == 0
  std::unique_ptr<DraftModel> draft_;  // speculative decoding's draft model; null: none
  int64_t sliding_window_ = 0;
  std::vector<int64_t> kv_group_windows_;  // empty with one group
  std::vector<int32_t> eos_token_ids_;
  Sampler sampler_;
  DeviceSampler device_sampler_;  // CUDA: the steps whose sampling it can take
  TokenizerLoader load_tokenizer_;
  std::shared_ptr<const structured::TokenVocabulary> vocabulary_;  // on first use
  structured::GrammarCache grammar_cache_;
  // unique_ptr: PassEntry keeps pointers across the passes of a plan.
  absl::flat_hash_map<std::string, std::unique_ptr<Sequence>> seqs_;
  // Scratch reused across passes.
  std::vector<SequenceInput> batch_;
  std::vector<SamplingInput> sampling_;
  std::vector<int64_t> row_offsets_;  // per logits row: its position among its sequence's rows
  std::vector<DraftRequest> draft_requests_;
};

}  // namespace pagoda
