#include "worker/step_runner.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/step/stop_rules.h"

namespace pagoda {
namespace {

// Checks that each pair's ends lie in their pools and that no destination is written twice.
absl::Status ValidatePairs(absl::Span<const std::pair<int32_t, int32_t>> pairs,
                           const std::string& what, const char* src_pool, int64_t src_blocks,
                           const char* dst_pool, int64_t dst_blocks) {
  absl::flat_hash_set<int32_t> dsts;
  for (const auto& [src, dst] : pairs) {
    if (src < 0 || src >= src_blocks || dst < 0 || dst >= dst_blocks) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, " ", src, " -> ", dst, " is out of range: ", src_pool, " blocks are [0, ",
          src_blocks, "), ", dst_pool, " blocks [0, ", dst_blocks, ")"));
    }
    if (!dsts.insert(dst).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, "s write ", dst_pool, " block ", dst, " more than once"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<StepRunner>> StepRunner::Create(std::unique_ptr<ModelRunner> runner,
                                                               const StepRunnerOptions& options,
                                                               std::unique_ptr<DraftModel> draft) {
  if (runner == nullptr) return absl::InvalidArgumentError("StepRunner needs a ModelRunner");
  if (options.num_host_blocks < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_host_blocks must be >= 0, got ", options.num_host_blocks));
  }
  std::optional<KvCache> host_cache;
  if (options.num_host_blocks > 0) {
    KvCacheShape shape = runner->kv_cache().shape();
    shape.num_blocks = options.num_host_blocks;
    ASSIGN_OR_RETURN(KvCache cache, KvCache::Create(shape));
    host_cache.emplace(std::move(cache));
  }
  std::vector<int32_t> eos;
  auto add_eos = [&](int64_t id) {
    if (std::find(eos.begin(), eos.end(), id) == eos.end()) eos.push_back(static_cast<int32_t>(id));
  };
  for (int64_t id : runner->config().eos_token_ids) add_eos(id);
  for (int32_t id : options.extra_eos_token_ids) add_eos(id);
  // The engine may free the blocks behind a window only when no layer reads them. A draft model
  // catches up on a sequence's tokens at its own pace (worker/draft_model.h), behind the target,
  // so with a draft nothing is freed.
  const int64_t window = draft == nullptr ? runner->config().UniformSlidingWindow() : 0;
  std::vector<int64_t> group_windows;
  if (runner->kv_groups().num_groups() > 1) {
    if (draft != nullptr) {
      return absl::InvalidArgumentError(
          "a draft model needs one KV cache group (it reads behind the target's windows)");
    }
    group_windows = runner->kv_groups().windows;
  }
  std::unique_ptr<StepRunner> steps(new StepRunner(std::move(runner), std::move(host_cache),
                                                   std::move(eos), options, std::move(draft)));
  steps->sliding_window_ = group_windows.empty() ? window : 0;
  steps->kv_group_windows_ = std::move(group_windows);
  return steps;
}

int64_t StepRunner::num_used_device_blocks() const {
  absl::flat_hash_set<int32_t> used;
  for (const auto& [id, seq] : seqs_) {
    // Entries before a sliding window are never read: freed (kFreedBlockId), or stale ids the
    // engine gave back after sending them.
    const int64_t freeable = FreeableBlocks(seq->num_computed_tokens);
    for (size_t i = static_cast<size_t>(freeable); i < seq->block_table.size(); ++i) {
      used.insert(seq->block_table[i]);
    }
    for (size_t g = 1; g <= seq->more_block_tables.size(); ++g) {
      const std::vector<int32_t>& table = seq->more_block_tables[g - 1];
      const int64_t group_freeable = FreeableBlocks(seq->num_computed_tokens, static_cast<int>(g));
      for (size_t i = static_cast<size_t>(group_freeable); i < table.size(); ++i) {
        used.insert(table[i]);
      }
    }
  }
  return static_cast<int64_t>(used.size());
}

const std::vector<int32_t>* StepRunner::token_ids(const std::string& seq_id) const {
  auto it = seqs_.find(seq_id);
  return it == seqs_.end() ? nullptr : &it->second->token_ids;
}

int64_t StepRunner::FreeableBlocks(int64_t num_computed_tokens, int group) const {
  const int64_t window = kv_group_windows_.empty() ? sliding_window_ : kv_group_windows_[group];
  if (window == 0) return 0;
  return std::max<int64_t>(0, num_computed_tokens - window + 1) / block_size();
}

absl::Status StepRunner::ValidateBlockIds(absl::Span<const int32_t> block_ids,
                                          const std::string& what, int64_t first_index,
                                          int64_t num_computed_tokens, int group) const {
  const int64_t freeable = FreeableBlocks(num_computed_tokens, group);
  for (size_t i = 0; i < block_ids.size(); ++i) {
    const int32_t id = block_ids[i];
    if (id == kFreedBlockId && first_index + static_cast<int64_t>(i) < freeable) continue;
    if (id < 0 || id >= num_device_blocks()) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " names block ", id, ", outside [0, ", num_device_blocks(), ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status StepRunner::ValidateTokenIds(absl::Span<const int32_t> token_ids,
                                          const std::string& what) const {
  for (int32_t id : token_ids) {
    if (id < 0 || id >= config().vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " holds token ", id, ", outside [0, ", config().vocab_size, ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status StepRunner::ValidateCapacity(const std::string& seq_id, int64_t num_tokens,
                                          int64_t num_blocks) const {
  if (num_tokens > num_blocks * block_size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sequence ", seq_id, " would hold ", num_tokens, " tokens but its ", num_blocks,
        " blocks of ", block_size(), " tokens hold ", num_blocks * block_size()));
  }
  if (num_tokens > runner_->max_positions()) {
    return absl::InvalidArgumentError(absl::StrCat("sequence ", seq_id, " would hold ", num_tokens,
                                                   " tokens, beyond the model's ",
                                                   runner_->max_positions(), " positions"));
  }
  return absl::OkStatus();
}

absl::Status StepRunner::ValidateSwapsAndCopies(const StepPlan& plan) const {
  const int64_t host_blocks = num_host_blocks();
  if (host_blocks == 0 && (!plan.swap_out.empty() || !plan.swap_in.empty())) {
    return absl::InvalidArgumentError("the plan swaps blocks but this worker has no host blocks");
  }
  RETURN_IF_ERROR(
      ValidatePairs(plan.swap_out, "swap_out", "device", num_device_blocks(), "host", host_blocks));
  RETURN_IF_ERROR(
      ValidatePairs(plan.swap_in, "swap_in", "host", host_blocks, "device", num_device_blocks()));
  RETURN_IF_ERROR(ValidatePairs(plan.block_copies, "block copy", "device", num_device_blocks(),
                                "device", num_device_blocks()));
  for (const auto& [src, dst] : plan.block_copies) {
    if (src == dst) {
      return absl::InvalidArgumentError(
          absl::StrCat("block copy ", src, " -> ", dst, " copies a block onto itself"));
    }
  }
  return absl::OkStatus();
}

absl::Status StepRunner::Validate(const StepPlan& plan) const {
  if (plan.num_steps < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("step ", plan.step_id, ": num_steps must be >= 1, got ", plan.num_steps));
  }
  // The ids that are live once finished_seq_ids are dropped.
  absl::flat_hash_set<std::string> finished;
  for (const std::string& id : plan.finished_seq_ids) {
    if (!seqs_.contains(id)) {
      return absl::InvalidArgumentError(absl::StrCat("finished sequence ", id, " is unknown"));
    }
    if (!finished.insert(id).second) {
      return absl::InvalidArgumentError(absl::StrCat("sequence ", id, " is finished twice"));
    }
  }
  RETURN_IF_ERROR(ValidateSwapsAndCopies(plan));

  absl::flat_hash_set<std::string> added;
  for (const NewSequence& seq : plan.new_sequences) {
    const std::string& id = seq.seq_id;
    if ((seqs_.contains(id) && !finished.contains(id)) || !added.insert(id).second) {
      return absl::InvalidArgumentError(absl::StrCat("new sequence ", id, " is already live"));
    }
    const int64_t num_tokens = static_cast<int64_t>(seq.token_ids.size());
    if (num_tokens == 0) {
      return absl::InvalidArgumentError(absl::StrCat("new sequence ", id, " has no tokens"));
    }
    RETURN_IF_ERROR(ValidateTokenIds(seq.token_ids, absl::StrCat("new sequence ", id)));
    if (seq.num_prompt_tokens < 0 || seq.num_prompt_tokens > num_tokens) {
      return absl::InvalidArgumentError(absl::StrCat("new sequence ", id, ": num_prompt_tokens ",
                                                     seq.num_prompt_tokens, " is outside [0, ",
                                                     num_tokens, "]"));
    }
    if (seq.num_computed_tokens < 0 || seq.num_scheduled_tokens < 0 ||
        seq.num_computed_tokens + seq.num_scheduled_tokens > num_tokens) {
      return absl::InvalidArgumentError(absl::StrCat(
          "new sequence ", id, ": ", seq.num_computed_tokens, " computed + ",
          seq.num_scheduled_tokens, " scheduled tokens exceed its ", num_tokens, " tokens"));
    }
    RETURN_IF_ERROR(ValidateBlockIds(seq.block_ids, absl::StrCat("new sequence ", id), 0,
                                     seq.num_computed_tokens));
    RETURN_IF_ERROR(ValidateMoreGroups(seq));
    RETURN_IF_ERROR(ValidateCapacity(id, seq.num_computed_tokens + seq.num_scheduled_tokens,
                                     static_cast<int64_t>(seq.block_ids.size())));
    if (absl::Status s = seq.sampling_params.Validate(); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("new sequence ", id, ": ", s.message()));
    }
  }

  absl::flat_hash_set<std::string> updated;
  for (const CachedSequence& delta : plan.cached_sequences) {
    const std::string& id = delta.seq_id;
    auto it = seqs_.find(id);
    if (it == seqs_.end() || finished.contains(id) || added.contains(id)) {
      return absl::InvalidArgumentError(
          absl::StrCat("cached sequence ", id, " is unknown (or finished or new in this plan)"));
    }
    if (!updated.insert(id).second) {
      return absl::InvalidArgumentError(absl::StrCat("cached sequence ", id, " appears twice"));
    }
    const Sequence& seq = *it->second;
    RETURN_IF_ERROR(ValidateBlockIds(delta.new_block_ids, absl::StrCat("cached sequence ", id),
                                     static_cast<int64_t>(seq.block_table.size()),
                                     seq.num_computed_tokens));
    for (const auto& [index, block] : delta.replaced_block_ids) {
      if (index < 0 || index >= static_cast<int64_t>(seq.block_table.size())) {
        return absl::InvalidArgumentError(
            absl::StrCat("cached sequence ", id, " replaces block table entry ", index,
                         ", outside [0, ", seq.block_table.size(), ")"));
      }
      RETURN_IF_ERROR(ValidateBlockIds({block}, absl::StrCat("cached sequence ", id)));
    }
    RETURN_IF_ERROR(ValidateMoreGroups(delta, seq));
    RETURN_IF_ERROR(
        ValidateTokenIds(delta.replace_last_token_ids, absl::StrCat("cached sequence ", id)));
    RETURN_IF_ERROR(ValidateDrafts(plan, delta, seq));
    if (seq.matcher != nullptr && !delta.replace_last_token_ids.empty()) {
      // Only beam search replaces tokens, and a constraint refuses beam search at the edge.
      return absl::InvalidArgumentError(
          absl::StrCat("cached sequence ", id, " is constrained: its tokens cannot be replaced"));
    }
    int64_t num_known = static_cast<int64_t>(seq.token_ids.size());
    if (!delta.replace_last_token_ids.empty()) {
      num_known += static_cast<int64_t>(delta.replace_last_token_ids.size()) -
                   (seq.has_pending_sample() ? 1 : 0);
    }
    num_known += static_cast<int64_t>(delta.draft_token_ids.size()) +
                 std::max<int64_t>(delta.num_worker_draft_tokens, 0);
    const int64_t num_uncomputed = num_known - seq.num_computed_tokens;
    if (delta.num_scheduled_tokens < 0 || delta.num_scheduled_tokens > num_uncomputed) {
      return absl::InvalidArgumentError(
          absl::StrCat("cached sequence ", id, ": ", delta.num_scheduled_tokens,
                       " tokens scheduled but it holds ", num_uncomputed, " uncomputed tokens"));
    }
    RETURN_IF_ERROR(ValidateCapacity(
        id, seq.num_computed_tokens + delta.num_scheduled_tokens,
        static_cast<int64_t>(seq.block_table.size() + delta.new_block_ids.size())));
  }
  return absl::OkStatus();
}

absl::Status StepRunner::ValidateMoreGroups(const NewSequence& seq) const {
  const size_t num_more = kv_group_windows_.empty() ? 0 : kv_group_windows_.size() - 1;
  const std::string what = absl::StrCat("new sequence ", seq.seq_id);
  if (seq.more_block_ids.size() != num_more) {
    return absl::InvalidArgumentError(absl::StrCat(what, " has ", seq.more_block_ids.size() + 1,
                                                   " block tables for ", num_more + 1,
                                                   " KV cache groups"));
  }
  for (size_t g = 1; g <= num_more; ++g) {
    const std::vector<int32_t>& table = seq.more_block_ids[g - 1];
    if (table.size() != seq.block_ids.size()) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": group ", g, "'s table holds ",
                                                     table.size(), " blocks, group 0's ",
                                                     seq.block_ids.size()));
    }
    RETURN_IF_ERROR(ValidateBlockIds(table, absl::StrCat(what, " group ", g), 0,
                                     seq.num_computed_tokens, static_cast<int>(g)));
  }
  return absl::OkStatus();
}

absl::Status StepRunner::ValidateMoreGroups(const CachedSequence& delta,
                                            const Sequence& seq) const {
  const size_t num_more = kv_group_windows_.empty() ? 0 : kv_group_windows_.size() - 1;
  const std::string what = absl::StrCat("cached sequence ", delta.seq_id);
  if (delta.more_groups.size() != num_more) {
    return absl::InvalidArgumentError(absl::StrCat(what, " has ", delta.more_groups.size() + 1,
                                                   " block-table deltas for ", num_more + 1,
                                                   " KV cache groups"));
  }
  for (size_t g = 1; g <= num_more; ++g) {
    const GroupBlockDelta& group = delta.more_groups[g - 1];
    const std::vector<int32_t>& table = seq.more_block_tables[g - 1];
    const std::string where = absl::StrCat(what, " group ", g);
    if (table.size() + group.new_block_ids.size() !=
        seq.block_table.size() + delta.new_block_ids.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "'s table would hold ", table.size() + group.new_block_ids.size(),
                       " blocks, group 0's ", seq.block_table.size() + delta.new_block_ids.size()));
    }
    RETURN_IF_ERROR(ValidateBlockIds(group.new_block_ids, where, static_cast<int64_t>(table.size()),
                                     seq.num_computed_tokens, static_cast<int>(g)));
    for (const auto& [index, block] : group.replaced_block_ids) {
      if (index < 0 || index >= static_cast<int64_t>(table.size())) {
        return absl::InvalidArgumentError(absl::StrCat(where, " replaces block table entry ", index,
                                                       ", outside [0, ", table.size(), ")"));
      }
      RETURN_IF_ERROR(ValidateBlockIds({block}, where));
    }
  }
  return absl::OkStatus();
}

absl::Status StepRunner::ValidateDrafts(const StepPlan& plan, const CachedSequence& delta,
                                        const Sequence& seq) const {
  const std::string what = absl::StrCat("cached sequence ", delta.seq_id);
  if (delta.draft_guard_token_id >= 0) {
    if (delta.draft_token_ids.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " has a draft guard but no draft_token_ids"));
    }
    RETURN_IF_ERROR(ValidateTokenIds({delta.draft_guard_token_id}, what + "'s draft guard"));
  }
  if (delta.draft_token_ids.empty() && delta.num_worker_draft_tokens == 0) {
    return absl::OkStatus();
  }
  RETURN_IF_ERROR(ValidateTokenIds(delta.draft_token_ids, what));
  if (delta.num_worker_draft_tokens != 0) {
    if (draft_ == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " asks for draft-model proposals but this worker has no draft model"));
    }
    if (delta.num_worker_draft_tokens < 0 || !delta.draft_token_ids.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, ": num_worker_draft_tokens ", delta.num_worker_draft_tokens,
          " must be positive and excludes draft_token_ids (", delta.draft_token_ids.size(), ")"));
    }
  }
  if (plan.num_steps != 1) {
    return absl::InvalidArgumentError(absl::StrCat(what, " has draft tokens in a plan of ",
                                                   plan.num_steps, " steps (drafts need one)"));
  }
  if (!delta.replace_last_token_ids.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " both replaces its last token and has draft tokens"));
  }
  const int64_t num_drafts =
      static_cast<int64_t>(delta.draft_token_ids.size()) + delta.num_worker_draft_tokens;
  if (!seq.has_pending_sample() ||
      seq.num_computed_tokens + 1 != static_cast<int64_t>(seq.token_ids.size()) ||
      delta.num_scheduled_tokens != 1 + num_drafts) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": ", num_drafts, " draft tokens must follow its pending sample, all ",
        1 + num_drafts, " scheduled; it has ", seq.token_ids.size() - seq.num_computed_tokens,
        " uncomputed tokens and ", delta.num_scheduled_tokens, " scheduled"));
  }
  return absl::OkStatus();
}

absl::Status StepRunner::Swap(const StepPlan& plan) {
  KvCache& device = runner_->kv_cache();
  if (!plan.swap_out.empty()) {
    RETURN_IF_ERROR(KvCache::CopyBlocksAcross(device, *host_cache_, plan.swap_out));
  }
  if (!plan.swap_in.empty()) {
    RETURN_IF_ERROR(KvCache::CopyBlocksAcross(*host_cache_, device, plan.swap_in));
  }
  if (draft_ != nullptr) {
    RETURN_IF_ERROR(draft_->SwapOut(plan.swap_out));
    RETURN_IF_ERROR(draft_->SwapIn(plan.swap_in));
  }
  return absl::OkStatus();
}

absl::Status StepRunner::ProposeDrafts(const StepPlan& plan) {
  draft_requests_.clear();
  for (const CachedSequence& delta : plan.cached_sequences) {
    if (delta.num_worker_draft_tokens <= 0) continue;
    Sequence& seq = *seqs_.at(delta.seq_id);
    draft_requests_.push_back({.token_ids = seq.token_ids,
                               .num_computed = &seq.num_draft_computed,
                               .block_table = seq.block_table,
                               .num_drafts = delta.num_worker_draft_tokens,
                               .matcher = seq.matcher.get()});
  }
  if (draft_requests_.empty()) return absl::OkStatus();
  RETURN_IF_ERROR(draft_->Propose(absl::MakeSpan(draft_requests_)));
  size_t next = 0;
  for (const CachedSequence& delta : plan.cached_sequences) {
    if (delta.num_worker_draft_tokens <= 0) continue;
    Sequence& seq = *seqs_.at(delta.seq_id);
    seq.drafts = std::move(draft_requests_[next++].drafts);
    seq.token_ids.insert(seq.token_ids.end(), seq.drafts.begin(), seq.drafts.end());
  }
  return absl::OkStatus();
}

absl::StatusOr<absl::flat_hash_map<std::string, std::unique_ptr<structured::TokenMatcher>>>
StepRunner::CreateMatchers(const StepPlan& plan) {
  absl::flat_hash_map<std::string, std::unique_ptr<structured::TokenMatcher>> matchers;
  for (const NewSequence& in : plan.new_sequences) {
    const SamplingParams& params = in.sampling_params;
    if (!params.constrained()) continue;
    const std::string what = absl::StrCat("new sequence ", in.seq_id);
    if (vocabulary_ == nullptr) {
      if (!load_tokenizer_) {
        return absl::InvalidArgumentError(
            absl::StrCat(what, " is constrained, but this worker has no tokenizer"));
      }
      ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, load_tokenizer_());
      ASSIGN_OR_RETURN(vocabulary_, structured::TokenVocabulary::FromTokenizer(
                                        *tokenizer, eos_token_ids_, "worker"));
    }
    const structured::GrammarKind kind = structured::GrammarKindOf(params.constraint_kind);
    absl::StatusOr<std::shared_ptr<const structured::CompiledGrammar>> compiled =
        grammar_cache_.GetOrCompile(kind, params.constraint, vocabulary_);
    if (!compiled.ok()) {
      return absl::Status(compiled.status().code(),
                          absl::StrCat(what, ": ", compiled.status().message()));
    }
    auto matcher = std::make_unique<structured::TokenMatcher>(*std::move(compiled));
    // Outputs the engine already holds (a recomputed or failed-over sequence).
    for (size_t i = static_cast<size_t>(in.num_prompt_tokens); i < in.token_ids.size(); ++i) {
      if (!matcher->AcceptToken(in.token_ids[i])) {
        return absl::InvalidArgumentError(
            absl::StrCat(what, ": output token ", i - in.num_prompt_tokens, " (id ",
                         in.token_ids[i], ") does not match its constraint"));
      }
    }
    matchers[in.seq_id] = std::move(matcher);
  }
  return matchers;
}

void StepRunner::AddAndUpdateSequences(
    const StepPlan& plan,
    absl::flat_hash_map<std::string, std::unique_ptr<structured::TokenMatcher>> matchers) {
  for (const NewSequence& in : plan.new_sequences) {
    auto seq = std::make_unique<Sequence>();
    if (auto it = matchers.find(in.seq_id); it != matchers.end()) {
      seq->matcher = std::move(it->second);
    }
    seq->token_ids = in.token_ids;
    seq->num_prompt_tokens = in.num_prompt_tokens;
    seq->num_computed_tokens = in.num_computed_tokens;
    seq->block_table = in.block_ids;
    seq->more_block_tables = in.more_block_ids;
    seq->params = in.sampling_params;
    seq->seed = in.seed;
    seqs_[in.seq_id] = std::move(seq);
  }
  for (const CachedSequence& delta : plan.cached_sequences) {
    Sequence& seq = *seqs_.at(delta.seq_id);
    for (const auto& [index, block] : delta.replaced_block_ids) seq.block_table[index] = block;
    seq.block_table.insert(seq.block_table.end(), delta.new_block_ids.begin(),
                           delta.new_block_ids.end());
    for (size_t g = 0; g < delta.more_groups.size(); ++g) {
      const GroupBlockDelta& group = delta.more_groups[g];
      std::vector<int32_t>& table = seq.more_block_tables[g];
      for (const auto& [index, block] : group.replaced_block_ids) table[index] = block;
      table.insert(table.end(), group.new_block_ids.begin(), group.new_block_ids.end());
    }
    if (!delta.replace_last_token_ids.empty()) {
      if (seq.has_pending_sample()) seq.token_ids.pop_back();
      seq.token_ids.insert(seq.token_ids.end(), delta.replace_last_token_ids.begin(),
                           delta.replace_last_token_ids.end());
      seq.last_token_sampled = false;
    }
    // Guarded drafts follow the sample the engine guessed; after another they are dropped.
    seq.drafts = DraftGuardHolds(delta, seq.token_ids.back()) ? delta.draft_token_ids
                                                              : std::vector<int32_t>();
    seq.token_ids.insert(seq.token_ids.end(), seq.drafts.begin(), seq.drafts.end());
  }
}

bool StepRunner::IsStop(const Sequence& seq, int32_t token) const {
  // The engine's rules (common/step/stop_rules.h); max_model_len is the engine's, and
  // CanDecodeAgain keeps a sequence within its blocks and the model's positions.
  return StopRules(seq.params, eos_token_ids_)
             .Check(token, seq.num_output_tokens(), static_cast<int64_t>(seq.token_ids.size())) !=
         TokenStop::kNone;
}

bool StepRunner::CanDecodeAgain(const Sequence& seq) const {
  const int64_t num_tokens = static_cast<int64_t>(seq.token_ids.size());
  return num_tokens <= static_cast<int64_t>(seq.block_table.size()) * block_size() &&
         num_tokens <= runner_->max_positions();
}

void StepRunner::FillBitmask(Sequence& seq, const std::string& seq_id, absl::Span<uint32_t> mask) {
  std::fill(mask.begin(), mask.end(), 0u);
  // A matcher that accepted EOS allows nothing; the engine may still ask for one more token
  // (it pipelines the next step before it sees the EOS) and drops it. Offer EOS again.
  bool eos_only = seq.matcher->IsTerminated();
  if (!eos_only) {
    seq.matcher->FillNextTokenBitmask(mask);
    if (std::all_of(mask.begin(), mask.end(), [](uint32_t w) { return w == 0; })) {
      // No token at all (the matcher's bounded state overflowed): ending the sequence
      // unfinished beats failing the whole batch.
      PAGODA_LOG(warn, "sequence {}: its grammar allows no token after {} outputs; ending it",
                 seq_id, seq.num_output_tokens());
      eos_only = true;
    }
  }
  if (eos_only) {
    for (int32_t id : eos_token_ids_) {
      if (id >= 0 && id < vocabulary_->size()) mask[id / 32] |= 1u << (id % 32);
    }
  }
}

absl::StatusOr<std::vector<StepRunner::PassEntry>> StepRunner::RunPass(
    const std::vector<PassEntry>& pass, StepResult& result) {
  batch_.clear();
  for (const PassEntry& e : pass) {
    const Sequence& seq = *e.seq;
    batch_.push_back(
        {.token_ids =
             absl::MakeConstSpan(seq.token_ids).subspan(seq.num_computed_tokens, e.num_tokens),
         .num_computed_tokens = seq.num_computed_tokens,
         .block_table = seq.block_table,
         .sample =
             seq.num_computed_tokens + e.num_tokens == static_cast<int64_t>(seq.token_ids.size()),
         .num_sampled_tokens = 1 + static_cast<int64_t>(seq.drafts.size())});
    for (const std::vector<int32_t>& table : seq.more_block_tables) {
      batch_.back().more_block_tables.push_back(table);
    }
  }
  // Validate(plan) covered this pass: its tokens are the plan's or sampled, and CanDecodeAgain
  // kept every later pass within the block table and the model's positions.
  // On CUDA the logits stay on the device when its sampler can take the step (below).
  const bool on_device = runner_->device() != Device::kCpu;
  ASSIGN_OR_RETURN(StepLogits * logits,
                   runner_->ExecuteValidated(batch_, /*keep_logits_on_device=*/on_device));
  for (const PassEntry& e : pass) e.seq->num_computed_tokens += e.num_tokens;

  // One row per sampled position: a sequence with d drafts has d + 1 consecutive rows, row i
  // sampling output num_outputs + i as if drafts [0, i) were its outputs already.
  sampling_.clear();
  row_offsets_.assign(static_cast<size_t>(logits->num_rows), 0);
  for (int64_t r = 0; r < logits->num_rows; ++r) {
    const PassEntry& e = pass[logits->seq_index[r]];
    Sequence& seq = *e.seq;
    const int64_t i =
        r > 0 && logits->seq_index[r - 1] == logits->seq_index[r] ? row_offsets_[r - 1] + 1 : 0;
    row_offsets_[r] = i;
    const int64_t num_drafts = static_cast<int64_t>(seq.drafts.size());
    const int64_t known = static_cast<int64_t>(seq.token_ids.size()) - num_drafts + i;
    const auto tokens = absl::MakeConstSpan(seq.token_ids).first(known);
    absl::Span<const uint32_t> bitmask;
    if (seq.matcher != nullptr) {
      const size_t words = static_cast<size_t>(vocabulary_->bitmask_words());
      if (i == 0) {
        seq.bitmask.assign(words * (num_drafts + 1), 0u);
        seq.num_matcher_drafts = 0;
      }
      const absl::Span<uint32_t> mask = absl::MakeSpan(seq.bitmask).subspan(i * words, words);
      // Row i's mask follows drafts [0, i). A draft the grammar refuses cannot equal the sample
      // before it (that sample is masked), so the rows after it are never used: they get the
      // last valid state's mask.
      if (i > 0 && seq.num_matcher_drafts == i - 1 && !seq.matcher->IsTerminated() &&
          seq.matcher->AcceptToken(seq.drafts[i - 1])) {
        ++seq.num_matcher_drafts;
      }
      FillBitmask(seq, *e.seq_id, mask);
      bitmask = mask;
    }
    sampling_.push_back({.params = &seq.params,
                         .seed = seq.seed,
                         .step = known - seq.num_prompt_tokens,
                         .prompt_token_ids = tokens.subspan(0, seq.num_prompt_tokens),
                         .output_token_ids = tokens.subspan(seq.num_prompt_tokens),
                         .eos_token_ids = eos_token_ids_,
                         .token_bitmask = bitmask});
  }
  std::vector<SampleOutput> samples;
  if (logits->device_values != nullptr && DeviceSampler::Handles(sampling_)) {
    ASSIGN_OR_RETURN(samples, device_sampler_.Sample(logits->device_values, logits->num_rows,
                                                     logits->vocab_size, sampling_));
  } else {
    RETURN_IF_ERROR(runner_->LogitsToHost());
    ASSIGN_OR_RETURN(samples, sampler_.Sample(absl::MakeSpan(logits->values.data(),
                                                             logits->num_rows * logits->vocab_size),
                                              logits->num_rows, logits->vocab_size, sampling_));
  }

  std::vector<PassEntry> sampled;
  bool verified = false;      // the current sequence's output ended (a draft was rejected, a stop)
  int64_t output_index = -1;  // the current sequence's entry in result.outputs
  for (int64_t r = 0; r < logits->num_rows; ++r) {
    const PassEntry& e = pass[logits->seq_index[r]];
    Sequence& seq = *e.seq;
    const int64_t i = row_offsets_[r];
    const int64_t num_drafts = static_cast<int64_t>(seq.drafts.size());
    if (i == 0) {
      verified = false;
      if (num_drafts > 0) {
        // The drafts leave; the accepted ones come back as samples below.
        seq.token_ids.resize(seq.token_ids.size() - num_drafts);
        if (seq.matcher != nullptr && seq.num_matcher_drafts > 0) {
          seq.matcher->Rollback(static_cast<int>(seq.num_matcher_drafts));
        }
      }
    }
    if (verified) continue;
    SampleOutput& sample = samples[r];
    // (An EOS offered past a terminated or dead-ended matcher advances nothing.)
    if (seq.matcher != nullptr && !seq.matcher->IsTerminated() &&
        !seq.matcher->AcceptToken(sample.token_id) &&
        std::find(eos_token_ids_.begin(), eos_token_ids_.end(), sample.token_id) ==
            eos_token_ids_.end()) {
      // The sample came from the matcher's own mask.
      return absl::InternalError(absl::StrCat("sequence ", *e.seq_id, ": sampled token ",
                                              sample.token_id, " is outside its grammar's mask"));
    }
    seq.token_ids.push_back(sample.token_id);
    seq.last_token_sampled = true;
    // A multi-step plan appends to the output entry of the sequence's first pass; the rows of
    // drafts to the entry of their first row.
    if (i == 0) output_index = e.output_index;
    if (output_index < 0) {
      output_index = static_cast<int64_t>(result.outputs.size());
      result.outputs.push_back({.seq_id = *e.seq_id});
    }
    SequenceOutput& out = result.outputs[output_index];
    out.token_ids.push_back(sample.token_id);
    if (seq.params.logprobs >= 0) {
      out.logprobs.push_back(sample.logprob);
      out.top_logprobs.push_back(std::move(sample.top_logprobs));
    }
    verified = i == num_drafts || sample.token_id != seq.drafts[i] || IsStop(seq, sample.token_id);
    if (!verified) continue;
    if (num_drafts > 0) {
      // The KV of the pending sample and of the accepted drafts is computed; the last sample
      // is the next input. The draft model's K/V hold past the kept tokens no more.
      seq.num_computed_tokens = static_cast<int64_t>(seq.token_ids.size()) - 1;
      seq.num_draft_computed = std::min(seq.num_draft_computed, seq.num_computed_tokens);
      seq.drafts.clear();
    }
    sampled.push_back(
        {.seq = &seq, .seq_id = e.seq_id, .num_tokens = 1, .output_index = output_index});
  }
  return sampled;
}

absl::StatusOr<StepResult> StepRunner::Apply(const StepPlan& plan) {
  RETURN_IF_ERROR(Validate(plan));
  ASSIGN_OR_RETURN(auto matchers, CreateMatchers(plan));
  for (const std::string& id : plan.finished_seq_ids) seqs_.erase(id);
  RETURN_IF_ERROR(Swap(plan));
  RETURN_IF_ERROR(runner_->kv_cache().CopyBlocks(plan.block_copies));
  if (draft_ != nullptr) RETURN_IF_ERROR(draft_->CopyBlocks(plan.block_copies));
  AddAndUpdateSequences(plan, std::move(matchers));
  RETURN_IF_ERROR(ProposeDrafts(plan));

  std::vector<PassEntry> pass;
  for (const NewSequence& in : plan.new_sequences) {
    if (in.num_scheduled_tokens == 0) continue;
    auto it = seqs_.find(in.seq_id);
    pass.push_back(
        {.seq = it->second.get(), .seq_id = &it->first, .num_tokens = in.num_scheduled_tokens});
  }
  for (const CachedSequence& delta : plan.cached_sequences) {
    if (delta.num_scheduled_tokens == 0) continue;
    auto it = seqs_.find(delta.seq_id);
    // A draft model may propose fewer tokens than asked (at the end of its positions), and
    // guarded drafts may have been dropped.
    const int64_t num_tokens = delta.num_worker_draft_tokens > 0 || delta.draft_guard_token_id >= 0
                                   ? 1 + static_cast<int64_t>(it->second->drafts.size())
                                   : delta.num_scheduled_tokens;
    pass.push_back({.seq = it->second.get(), .seq_id = &it->first, .num_tokens = num_tokens});
  }

  StepResult result{.step_id = plan.step_id};
  for (int32_t step = 0; step < plan.num_steps && !pass.empty(); ++step) {
    ASSIGN_OR_RETURN(std::vector<PassEntry> sampled, RunPass(pass, result));
    // Multi-step: a sequence that sampled feeds its sample to the next pass unless it stopped
    // or has no room left for it.
    pass.clear();
    for (const PassEntry& e : sampled) {
      if (!IsStop(*e.seq, e.seq->token_ids.back()) && CanDecodeAgain(*e.seq)) pass.push_back(e);
    }
  }
  return result;
}

}  // namespace pagoda
