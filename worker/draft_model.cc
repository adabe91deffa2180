#include "worker/draft_model.h"

#include <algorithm>
#include <limits>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "common/model_source.h"
#include "common/status_macros.h"
#include "worker/model_weights.h"

namespace pagoda {
namespace {

// The first id of the row's largest logit; NaN logits never win (a hostile draft file cannot
// propose out of range).
int32_t Argmax(const float* row, int64_t vocab_size) {
  int32_t best = 0;
  float best_value = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < vocab_size; ++i) {
    if (row[i] > best_value) {
      best_value = row[i];
      best = static_cast<int32_t>(i);
    }
  }
  return best;
}

// The same among the ids whose bit is set in `mask` (ids past it are not allowed); -1 when none.
// A masked-in id with a NaN or -inf logit still beats none: the grammar decides what is allowed.
int32_t MaskedArgmax(const float* row, int64_t vocab_size, absl::Span<const uint32_t> mask) {
  int32_t best = -1;
  float best_value = 0;
  const int64_t end = std::min<int64_t>(vocab_size, static_cast<int64_t>(mask.size()) * 32);
  for (int64_t i = 0; i < end; ++i) {
    if (!((mask[i >> 5] >> (i & 31)) & 1u)) continue;
    if (best < 0 || row[i] > best_value) {
      best_value = row[i];
      best = static_cast<int32_t>(i);
    }
  }
  return best;
}

}  // namespace

int64_t KvBytesPerBlock(const ModelConfig& config, int64_t block_size,
                        const TensorParallelShard& shard, DType kv_cache_dtype) {
  const absl::StatusOr<ShardLayout> layout = ComputeShardLayout(config, shard);
  if (!layout.ok()) return 0;
  const KvCacheShape shape{.num_layers = config.num_hidden_layers,
                           .num_blocks = 1,
                           .block_size = block_size,
                           .num_kv_heads = layout->num_kv_heads,
                           .head_dim = config.head_dim,
                           .dtype = kv_cache_dtype};
  return shape.bytes_per_block();
}

absl::StatusOr<std::unique_ptr<DraftModel>> DraftModel::Create(std::unique_ptr<ModelRunner> runner,
                                                               int64_t num_host_blocks,
                                                               int64_t max_catch_up_chunk) {
  if (runner == nullptr) return absl::InvalidArgumentError("DraftModel needs a ModelRunner");
  if (max_catch_up_chunk < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_catch_up_chunk must be >= 1, got ", max_catch_up_chunk));
  }
  std::optional<KvCache> host_cache;
  if (num_host_blocks > 0) {
    KvCacheShape shape = runner->kv_cache().shape();
    shape.num_blocks = num_host_blocks;
    ASSIGN_OR_RETURN(KvCache cache, KvCache::Create(shape));
    host_cache.emplace(std::move(cache));
  }
  return std::unique_ptr<DraftModel>(
      new DraftModel(std::move(runner), std::move(host_cache), max_catch_up_chunk));
}

absl::Status DraftModel::Propose(absl::Span<DraftRequest> requests) {
  const int64_t max_positions = runner_->max_positions();
  active_.clear();
  // Whatever happens below, each matcher is left where it was.
  absl::Cleanup restore_matchers = [requests] {
    for (DraftRequest& r : requests) {
      if (r.matcher != nullptr && r.matcher_steps > 0) r.matcher->Rollback(r.matcher_steps);
      r.matcher_steps = 0;
    }
  };
  for (DraftRequest& r : requests) {
    r.drafts.clear();
    r.matcher_steps = 0;
    const int64_t len = static_cast<int64_t>(r.token_ids.size());
    *r.num_computed = std::clamp<int64_t>(*r.num_computed, 0, len - 1);
    // Draft j (0-based) is read at position len - 1 + j; the draft model stops at its own last.
    r.num_drafts = std::min(r.num_drafts, max_positions - len + 1);
    if (r.num_drafts > 0) active_.push_back(&r);
  }
  // Long catch-ups first, in bounded chunks without logits (as chunked prefill bounds a target
  // step).
  while (true) {
    batch_.clear();
    for (DraftRequest* r : active_) {
      const int64_t behind = static_cast<int64_t>(r->token_ids.size()) - *r->num_computed;
      if (behind <= max_catch_up_chunk_) continue;
      batch_.push_back({.token_ids = r->token_ids.subspan(*r->num_computed, max_catch_up_chunk_),
                        .num_computed_tokens = *r->num_computed,
                        .block_table = r->block_table,
                        .sample = false});
      *r->num_computed += max_catch_up_chunk_;
    }
    if (batch_.empty()) break;
    RETURN_IF_ERROR(runner_->ExecuteValidated(batch_).status());
  }
  // Pass 0: each sequence's uncomputed tokens, the pending sample last, give the first draft.
  batch_.clear();
  for (DraftRequest* r : active_) {
    const int64_t computed = *r->num_computed;
    batch_.push_back({.token_ids = r->token_ids.subspan(computed),
                      .num_computed_tokens = computed,
                      .block_table = r->block_table,
                      .sample = true});
  }
  while (!batch_.empty()) {
    // The target's check of the plan covered these batches: its tokens (the draft shares the
    // vocabulary), its block tables (the draft cache has the target's blocks) and positions up
    // to len - 1 + num_drafts (the draft's are capped above).
    ASSIGN_OR_RETURN(StepLogits * logits, runner_->ExecuteValidated(batch_));
    std::vector<DraftRequest*> next;
    for (int64_t row = 0; row < logits->num_rows; ++row) {
      DraftRequest& r = *active_[logits->seq_index[row]];
      const SequenceInput& in = batch_[logits->seq_index[row]];
      *r.num_computed = in.num_computed_tokens + static_cast<int64_t>(in.token_ids.size());
      if (r.matcher == nullptr) {
        r.drafts.push_back(Argmax(logits->row(row), logits->vocab_size));
      } else {
        if (r.matcher->IsTerminated()) continue;  // the pending sample was a stop id
        mask_.resize(r.matcher->bitmask_words());
        r.matcher->FillNextTokenBitmask(absl::MakeSpan(mask_));
        const int32_t token = MaskedArgmax(logits->row(row), logits->vocab_size, mask_);
        if (token < 0 || !r.matcher->AcceptToken(token)) continue;
        ++r.matcher_steps;
        r.drafts.push_back(token);
        if (r.matcher->IsTerminated()) continue;  // a stop id: nothing follows it
      }
      if (static_cast<int64_t>(r.drafts.size()) < r.num_drafts) next.push_back(&r);
    }
    batch_.clear();
    for (DraftRequest* r : next) {
      batch_.push_back({.token_ids = absl::MakeConstSpan(&r->drafts.back(), 1),
                        .num_computed_tokens = *r->num_computed,
                        .block_table = r->block_table,
                        .sample = true});
    }
    active_ = std::move(next);
  }
  return absl::OkStatus();
}

absl::Status DraftModel::CopyBlocks(absl::Span<const std::pair<int32_t, int32_t>> src_dst) {
  return runner_->kv_cache().CopyBlocks(src_dst);
}

absl::Status DraftModel::SwapOut(absl::Span<const std::pair<int32_t, int32_t>> device_host) {
  if (device_host.empty() || !host_cache_.has_value()) return absl::OkStatus();
  return KvCache::CopyBlocksAcross(runner_->kv_cache(), *host_cache_, device_host);
}

absl::Status DraftModel::SwapIn(absl::Span<const std::pair<int32_t, int32_t>> host_device) {
  if (host_device.empty() || !host_cache_.has_value()) return absl::OkStatus();
  return KvCache::CopyBlocksAcross(*host_cache_, runner_->kv_cache(), host_device);
}

absl::StatusOr<std::unique_ptr<DraftModel>> LoadDraftModel(const DraftModelOptions& options,
                                                           const std::string& target_path,
                                                           const ModelConfig& target,
                                                           ModelRunnerOptions runner_options,
                                                           int64_t num_host_blocks) {
  absl::StatusOr<ModelSource> source = ModelSource::Open(options.path);
  if (!source.ok()) {
    return absl::Status(source.status().code(),
                        absl::StrCat("cannot open the draft model: ", source.status().message()));
  }
  const ModelConfig& config = source->config();
  RETURN_IF_ERROR(CheckDraftVocabulary(target_path, target, options.path, config));
  RETURN_IF_ERROR(ValidateTensorParallel(config, runner_options.shard));
  const WeightLoadOptions load{.dtype = source->is_gguf() ? std::nullopt : options.dtype};
  absl::StatusOr<ModelWeights> weights =
      options.load_format == "dummy"
          ? DummyModelWeights(config, options.dummy_seed, runner_options.shard, load)
          : LoadModelWeights(*source, runner_options.shard, load);
  if (!weights.ok()) {
    return absl::Status(weights.status().code(),
                        absl::StrCat("cannot load the draft model from ", options.path, ": ",
                                     weights.status().message()));
  }
  const int64_t target_positions = runner_options.max_positions > 0
                                       ? runner_options.max_positions
                                       : target.max_position_embeddings;
  runner_options.max_positions = std::min(target_positions, config.max_position_embeddings);
  ASSIGN_OR_RETURN(std::unique_ptr<ModelRunner> runner,
                   ModelRunner::Create(config, std::move(*weights), runner_options));
  return DraftModel::Create(std::move(runner), num_host_blocks, options.max_catch_up_chunk);
}

}  // namespace pagoda
