// DraftModel: speculative decoding's draft-model proposer on a worker. A second, smaller (or more
// heavily quantized) model sharing the target's vocabulary runs beside it with its own paged KV
// cache: the same number of blocks of the same size, indexed by the target's block ids, so the
// router's block tables, copy-on-write copies and swaps cover both caches and nothing else has to
// know the draft exists.
//
// Per sequence the draft keeps a count of leading positions whose draft K/V is valid (never more
// than the target's computed count). Propose catches each sequence up from there to its pending
// sample (its prompt too, the first time; in chunks of at most max_catch_up_chunk tokens, 512),
// then decodes greedily: n draft forward passes per step for n proposals (the first one also
// finishing the catch-up), every sequence of the step batched in each. The target verifies the
// proposals as it verifies n-gram ones; afterwards the valid count drops to the tokens the
// target kept. Draft K/V only steer proposals: a stale entry (a prefix block another sequence
// computed, a rejected draft's slot) can cost acceptance, never a wrong output.
//
//   ASSIGN_OR_RETURN(auto draft, LoadDraftModel({.path = "m.Q4_1.gguf"}, "m.F32.gguf", config,
//                                               {.num_blocks = 512, .block_size = 16}, 0));
//   std::vector<DraftRequest> requests = {{.token_ids = tokens, .num_computed = &n,
//                                          .block_table = blocks, .num_drafts = 4}};
//   RETURN_IF_ERROR(draft->Propose(absl::MakeSpan(requests)));  // requests[0].drafts
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/dtype.h"
#include "common/model_config.h"
#include "structured/token_matcher.h"
#include "worker/kv_cache.h"
#include "worker/model_runner.h"

namespace pagoda {

/// Where the draft model comes from.
struct DraftModelOptions {
  std::string path;            // a model directory or a .gguf file
  std::string load_format;     // "" / "safetensors", or "dummy": random weights (tests)
  uint64_t dummy_seed = 0;     // load_format "dummy"
  std::optional<DType> dtype;  // safetensors and dummy weights (--dtype); a GGUF keeps its types
  /// The most tokens of one sequence a catch-up pass computes.
  int64_t max_catch_up_chunk = 512;
};

/// One sequence to propose for: tokens [0, token_ids.size()) are known, the last one the pending
/// sample the target computes next; the block table covers positions up to
/// token_ids.size() - 1 + num_drafts.
struct DraftRequest {
  absl::Span<const int32_t> token_ids;
  int64_t* num_computed = nullptr;  // the draft's valid K/V prefix; advanced by Propose
  absl::Span<const int32_t> block_table;
  int64_t num_drafts = 0;  // wanted (>= 1)
  // A constrained sequence's matcher, at the pending sample: each proposal is the draft's best
  // token among those its grammar allows after the proposals before it (so the target's masked
  // sample can equal it), and proposing stops at a stop id or where the grammar allows nothing.
  // Propose advances it and rolls it back before it returns.
  structured::TokenMatcher* matcher = nullptr;
  std::vector<int32_t> drafts;  // out: at most num_drafts (fewer near the draft's last position)
  int matcher_steps = 0;        // internal to Propose: tokens the matcher was advanced by
};

class DraftModel {
 public:
  /// `runner` is the draft's (its KV cache shaped like the target's in blocks); `num_host_blocks`
  /// sizes its swap space like the target's (0: none).
  static absl::StatusOr<std::unique_ptr<DraftModel>> Create(std::unique_ptr<ModelRunner> runner,
                                                            int64_t num_host_blocks,
                                                            int64_t max_catch_up_chunk = 512);

  /// Proposes greedily for every request, batched; requests' block tables and tokens must be
  /// valid for the target (which the caller checked), whose vocabulary the draft shares.
  absl::Status Propose(absl::Span<DraftRequest> requests);

  /// The target's block operations, mirrored on the draft cache.
  absl::Status CopyBlocks(absl::Span<const std::pair<int32_t, int32_t>> src_dst);
  absl::Status SwapOut(absl::Span<const std::pair<int32_t, int32_t>> device_host);
  absl::Status SwapIn(absl::Span<const std::pair<int32_t, int32_t>> host_device);

  const ModelConfig& config() const { return runner_->config(); }
  int64_t kv_cache_bytes() const { return runner_->kv_cache().num_bytes(); }
  int64_t weight_bytes() const { return runner_->weights().num_bytes(); }

 private:
  DraftModel(std::unique_ptr<ModelRunner> runner, std::optional<KvCache> host_cache,
             int64_t max_catch_up_chunk)
      : runner_(std::move(runner)),
        host_cache_(std::move(host_cache)),
        max_catch_up_chunk_(max_catch_up_chunk) {}

  std::unique_ptr<ModelRunner> runner_;
  std::optional<KvCache> host_cache_;
  int64_t max_catch_up_chunk_;
  // Scratch reused across steps.
  std::vector<SequenceInput> batch_;
  std::vector<DraftRequest*> active_;
  std::vector<uint32_t> mask_;  // a constrained request's grammar mask (scratch)
};

/// Opens the draft model, checks its vocabulary against the target's (CheckDraftVocabulary of
/// common/model_source.h with `target_path` and `target`),
/// loads this shard of its weights and builds it with `runner_options` (the target's blocks,
/// shard and communicator; max_positions is capped at the draft's own).
absl::StatusOr<std::unique_ptr<DraftModel>> LoadDraftModel(const DraftModelOptions& options,
                                                           const std::string& target_path,
                                                           const ModelConfig& target,
                                                           ModelRunnerOptions runner_options,
                                                           int64_t num_host_blocks);

/// Bytes one KV block of `block_size` tokens takes on one rank of `shard` for `config` (keys and
/// values of every layer); 0 when the shard is invalid for the model.
int64_t KvBytesPerBlock(const ModelConfig& config, int64_t block_size,
                        const TensorParallelShard& shard, DType kv_cache_dtype);

}  // namespace pagoda
