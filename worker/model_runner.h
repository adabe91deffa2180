// ModelRunner: executes one forward step of a model for a flattened batch of sequences over the
// paged KV cache, and returns the logits of the sequences that sample. No padding: the new tokens
// of all sequences are packed into one [num_tokens, hidden] activation matrix; prefill chunks and
// decodes share the step. The runner owns the batch metadata, the KV cache and the
// tensor-parallel work (the all-gather of the vocab-parallel logits); the layers are the model
// definition's (worker/models/, picked by config.architecture), so the runner knows no
// architecture.
//
// Under tensor parallelism each rank runs one ModelRunner over its shard of the weights
// (tensor_parallel.h) and its heads of the KV cache; all ranks execute the same batches in the
// same order, meeting in the communicator's all-reduces (after o_proj and down_proj) and the
// all-gather of the vocab-parallel logits, so every rank returns the same full logits.
//
//   ASSIGN_OR_RETURN(auto runner, ModelRunner::Create(config, std::move(weights),
//                                                     {.num_blocks = 512, .block_size = 16}));
//   std::vector<SequenceInput> batch = {{.token_ids = prompt, .num_computed_tokens = 0,
//                                        .block_table = blocks, .sample = true}};
//   ASSIGN_OR_RETURN(const StepLogits* logits, runner->Execute(batch));
//
// On a CUDA device (ModelRunnerOptions::device): Create moves the weights there
// (CopyModelWeightsTo: quantized GGUF weights become BF16) and allocates the KV cache there; each
// step builds its metadata on the host as on the CPU, uploads it in one packed host -> device
// copy, runs the model's forward pass, gathers the sampling rows and applies the LM head on the
// device (all-gathering the vocab-parallel logits on the device, through a communicator that takes
// device memory: NCCL), and copies the logits into the host StepLogits, which the sampler reads.
// All of a step's device work goes to the runner's own stream (kernels/cuda/stream.h).
//
// CUDA graphs (CaptureCudaGraphs): decode batches — one new token per sequence, every sequence
// sampled — of up to the largest capture size replay the forward pass captured for the smallest
// size that holds them, padded (worker/cuda_graph_plan.h); the LM head on the sampled rows runs
// eagerly after the replay. Every other step runs eagerly, as does every step without graphs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/kv_cache_groups.h"
#include "common/model_config.h"
#include "kernels/cuda/stream.h"
#include "worker/communicator.h"
#include "worker/kv_cache.h"
#include "worker/model_weights.h"
#include "worker/models/activation_buffer.h"
#include "worker/models/model.h"
#include "worker/tensor_parallel.h"

namespace pagoda {

/// One sequence of a step: the tokens to compute now sit at positions
/// [num_computed_tokens, num_computed_tokens + token_ids.size()); the K/V of earlier positions
/// are already in the blocks of block_table, which must cover every position up to the last.
struct SequenceInput {
  absl::Span<const int32_t> token_ids;
  int64_t num_computed_tokens = 0;
  absl::Span<const int32_t> block_table;  // physical block ids, logical order
  /// KV cache groups 1..G-1 (ModelRunnerOptions::kv_groups): their tables, each as block_table
  /// is group 0's. Empty with one group.
  std::vector<absl::Span<const int32_t>> more_block_tables;
  bool sample = true;  // return logits for the last new token
  /// With `sample`: logits for the last this many new tokens, in [1, token_ids.size()]
  /// (speculative decoding verifies a draft at every position of its chunk).
  int64_t num_sampled_tokens = 1;
};

/// Logits of the sampling sequences of one step, in batch order (a sequence with
/// num_sampled_tokens > 1 has that many consecutive rows, in position order).
struct StepLogits {
  int64_t num_rows = 0;
  int64_t vocab_size = 0;
  std::vector<float> values;       // [num_rows, vocab_size]; capacity reused across steps
  std::vector<int32_t> seq_index;  // [num_rows]: index into the step's batch
  /// CUDA, when the caller asked to keep the logits on the device: the same
  /// [num_rows, vocab_size] in device memory, valid until the next step, and
  /// `values` unfilled until ModelRunner::LogitsToHost(). Null otherwise.
  float* device_values = nullptr;
  float* row(int64_t r) { return values.data() + r * vocab_size; }
};

struct ModelRunnerOptions {
  int64_t num_blocks = 0;              // KV cache blocks
  int64_t block_size = 16;             // tokens per block
  DType kv_cache_dtype = DType::kF32;  // kF32 or kBF16
  /// Positions the RoPE table covers; 0 = config.max_position_embeddings.
  int64_t max_positions = 0;
  /// This rank's shard; the weights must be that shard's.
  TensorParallelShard shard;
  /// Borrowed, must outlive the runner; required when shard.size > 1 (its rank and size must
  /// match the shard's).
  Communicator* communicator = nullptr;
  /// The layers' KV cache groups (PlanKvCacheGroups over config.num_hidden_layers layers). No
  /// groups: one group of every layer, slot l for layer l, the window
  /// config.UniformSlidingWindow() (blocks before it may be kFreedBlockId).
  KvCacheGroups kv_groups;
  /// Where the weights, the KV cache and the forward pass live. kCuda: FailedPrecondition naming
  /// the cause in a build without CUDA or without a visible device; Unimplemented naming the
  /// architecture or feature without a device path (ModelArchitecture::CheckDevice).
  Device device = Device::kCpu;
};

class ModelRunner {
 public:
  static absl::StatusOr<std::unique_ptr<ModelRunner>> Create(const ModelConfig& config,
                                                             ModelWeights weights,
                                                             const ModelRunnerOptions& options);
  ~ModelRunner();

  /// Runs one step. Validates the batch first (ValidateBatch); on error nothing of the cache
  /// outside the step's own slots has changed. The returned pointer is valid until the next
  /// call. Under tensor parallelism every rank must execute the same batches in the same order;
  /// a communicator error (a peer failed) leaves the replica to be re-initialised.
  absl::StatusOr<StepLogits*> Execute(absl::Span<const SequenceInput> batch);
  /// Execute for a batch its caller has validated already, e.g. a StepRunner, whose check of a
  /// whole plan covers every pass it runs: the batch is checked once, at the worker's edge, and
  /// neither here nor in the kernels. An invalid batch is undefined behaviour.
  /// With keep_logits_on_device, a CUDA runner leaves the logits on the device
  /// (StepLogits::device_values), for a sampler there (worker/device_sampler.h).
  absl::StatusOr<StepLogits*> ExecuteValidated(absl::Span<const SequenceInput> batch,
                                               bool keep_logits_on_device = false);
  /// Fills StepLogits::values from the device copy the last step kept there; nothing to do
  /// when it kept none or copied them already.
  absl::Status LogitsToHost();

  /// InvalidArgument naming the sequence unless every sequence has new tokens, a non-negative
  /// start, token ids in the vocabulary, positions within max_positions, and a block table per
  /// KV cache group that covers its context with ids in [0, num_blocks) (before the group's
  /// window of the first new token: any id). O(tokens + blocks).
  absl::Status ValidateBatch(absl::Span<const SequenceInput> batch) const;

  const ModelConfig& config() const { return config_; }
  /// The KV cache groups (never empty: one group when the options had none).
  const KvCacheGroups& kv_groups() const { return kv_groups_; }
  const ShardLayout& layout() const { return layout_; }
  const ModelWeights& weights() const { return model_->weights(); }
  KvCache& kv_cache() { return kv_cache_; }
  /// Replaces the KV cache with a zeroed one of `num_blocks` blocks (same layers, shape, dtype
  /// and device), freeing the old one first: a CUDA worker sizes its cache only after a step
  /// over a small one (worker/device_kv_budget.h). Every block id of earlier steps is void.
  /// Graphs captured before are captured again over the new cache.
  absl::Status ReallocateKvCache(int64_t num_blocks);
  int64_t block_size() const { return kv_cache_.shape().block_size; }
  int64_t num_blocks() const { return kv_cache_.shape().num_blocks; }
  int64_t max_positions() const { return max_positions_; }
  Device device() const { return device_; }

  /// CUDA: captures the forward pass of a decode batch of each of `sizes` (in [1, 256]; e.g.
  /// DefaultCudaGraphSizes) into a CUDA graph, replacing any captured before; ExecuteValidated
  /// replays them from then on. Each size first runs once eagerly over padding alone (no KV
  /// slot is written), so that every buffer the capture needs is allocated; under tensor
  /// parallelism every rank must call it at the same point (that run meets the other ranks).
  /// Logs the sizes, the time and the device memory taken. With more than one KV cache group
  /// nothing is captured (logged; every step runs eagerly). FailedPrecondition on the CPU.
  absl::Status CaptureCudaGraphs(absl::Span<const int64_t> sizes);
  /// The sizes captured, ascending; empty when every step runs eagerly.
  std::vector<int64_t> cuda_graph_sizes() const;
  /// Steps run by replaying a graph so far.
  int64_t cuda_graph_replays() const;
  /// false: every step runs eagerly, the graphs kept (a benchmark compares both on one runner).
  void set_replay_cuda_graphs(bool replay) { replay_graphs_ = replay; }

 private:
  ModelRunner(const ModelConfig& config, const ShardLayout& layout, Communicator* communicator,
              std::unique_ptr<Model> model, KvCache kv_cache, int64_t max_positions,
              KvCacheGroups kv_groups, Device device);

  /// Group g's table of `seq`.
  static absl::Span<const int32_t> GroupTable(const SequenceInput& seq, int g) {
    return g == 0 ? seq.block_table : seq.more_block_tables[g - 1];
  }

  // Flattens a valid batch into the per-step metadata below.
  void PrepareMetadata(absl::Span<const SequenceInput> batch);
  /// The forward pass's view of the metadata: the host vectors on the CPU; on CUDA their packed
  /// copy on the device (one host -> device copy; row_tokens too, into *row_tokens).
  absl::StatusOr<ForwardBatch> BatchOnDevice(const int64_t** row_tokens);
  /// logits_ <- LM head of the `rows` rows of last_hidden_ (all-gathered when sharded); on
  /// CUDA at one rank with keep_on_device, left on the device (logits_.device_values).
  absl::Status ComputeLogits(int64_t rows, bool keep_on_device);

  // CUDA graphs (model_runner.cc).
  struct CudaGraphs;
  /// Runs every size of graphs_ once eagerly over padding (its all-reduces with the other ranks
  /// only when warm_up_with_peers), then captures each.
  absl::Status CaptureGraphs(bool warm_up_with_peers);
  /// The step by its graph when graphs_ has one for `batch`: true with logits_ filled; false
  /// when the step must run eagerly.
  absl::StatusOr<bool> ReplayGraph(absl::Span<const SequenceInput> batch, bool keep_on_device);

  ModelConfig config_;
  ShardLayout layout_;
  Communicator* communicator_;  // nullptr when unsharded
  std::unique_ptr<Model> model_;
  KvCache kv_cache_;
  int64_t max_positions_ = 0;
  KvCacheGroups kv_groups_;
  Device device_;

  // Per-step metadata, rebuilt each step (capacity reused).
  std::vector<int32_t> token_ids_;        // [num_tokens]
  std::vector<int32_t> positions_;        // [num_tokens]
  std::vector<int64_t> slot_mapping_;     // [num_tokens]
  std::vector<int32_t> query_start_loc_;  // [num_seqs + 1]
  std::vector<int32_t> seq_lens_;         // [num_seqs]
  std::vector<int32_t> block_tables_;     // [num_seqs, max_blocks_per_seq]
  int64_t max_blocks_per_seq_ = 0;
  int64_t max_query_len_ = 0;  // the batch's longest query (new tokens of one sequence)
  // Groups 1..G-1 (empty with one group).
  std::vector<std::vector<int64_t>> more_slot_mappings_;  // [G - 1][num_tokens]
  std::vector<std::vector<int32_t>> more_block_tables_;   // [G - 1][num_seqs * max_blocks]
  std::vector<KvGroupBatch> more_groups_;                 // [G - 1]

  std::vector<int64_t> row_tokens_;  // [num_sampling]: the token of each logits row
  // CUDA: the metadata above packed on the host, and its device copy (capacity reused).
  std::vector<std::byte> staging_;
  std::shared_ptr<void> device_metadata_;
  int64_t device_metadata_bytes_ = 0;
  std::vector<KvGroupBatch> device_more_groups_;  // [G - 1], pointers into device_metadata_

  // Activations on device_ (capacity reused across steps).
  ActivationBuffer hidden_;           // [num_tokens, hidden] final-normed hidden states
  ActivationBuffer last_hidden_;      // [num_sampling, hidden]
  ActivationBuffer local_logits_;     // [num_sampling, vocab_rows] when sharded or on CUDA
  ActivationBuffer gathered_logits_;  // [tp_size, num_sampling, vocab_rows] when sharded
  ActivationBuffer device_logits_;    // CUDA, sharded, kept on the device: [num_sampling, vocab]
  StepLogits logits_;

  kernels::cuda::Stream stream_;        // CUDA: every step's work (none on the CPU)
  std::unique_ptr<CudaGraphs> graphs_;  // null: every step runs eagerly
  bool replay_graphs_ = true;
};

}  // namespace pagoda
