// The seam between ModelRunner (batch metadata, KV cache, tensor parallelism) and a model
// definition (one file per architecture family in worker/models/). A definition says two things:
//   - its weights: PlanWeights maps the checkpoint's tensor names (Hugging Face safetensors and
//     GGUF) to slots of a ModelWeights, with the window of each tensor a tensor-parallel rank
//     holds; the loaders (worker/model_weights.h) carry the plan out;
//   - its forward pass: a Model runs every layer over a flattened batch in terms of kernel ops,
//     reading and writing the KV cache the runner owns and meeting the other ranks through the
//     communicator it is handed.
// ModelRunner knows no architecture: the registry (worker/models/registry.h) picks the
// definition by config.architecture.
//
//   ASSIGN_OR_RETURN(const ModelArchitecture* arch, FindModelArchitecture(config));
//   ASSIGN_OR_RETURN(std::unique_ptr<Model> model,
//                    arch->CreateModel(config, layout, std::move(weights), {.max_positions = n}));
//   RETURN_IF_ERROR(model->Forward(context, hidden));              // [num_tokens, hidden]
//   RETURN_IF_ERROR(model->ComputeLogits(last_hidden, rows, logits));  // [rows, vocab_rows]
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "common/model_config.h"
#include "kernels/device.h"
#include "worker/communicator.h"
#include "worker/kv_cache.h"
#include "worker/model_weights.h"
#include "worker/tensor_parallel.h"

namespace pagoda {

/// What a checkpoint tensor is to the loaders: it decides the stored type (norms and biases are
/// fp32) and the dummy values.
enum class WeightKind : uint8_t { kEmbedding, kProjection, kNorm, kBias };

/// Where the rows of a target's slots go, stacked in slot order: a single Tensor (all slots in one
/// type) or a LinearWeight (consecutive slots of one stored type fuse into one part).
struct WeightTarget {
  Tensor* tensor = nullptr;
  LinearWeight* linear = nullptr;
};

/// One checkpoint tensor and the part of it this rank holds: a window of its rows (dim 0) and,
/// for matrices, of its columns (dim 1), stored at the next rows of its target. A vector [n] is
/// n rows of one column.
struct WeightSlot {
  std::string hf_name;         // e.g. "model.layers.0.self_attn.q_proj.weight"
  std::string gguf_name;       // e.g. "blk.0.attn_q.weight"
  std::vector<int64_t> shape;  // the whole tensor's, Hugging Face order ([out, in] or [n])
  WeightKind kind = WeightKind::kProjection;
  int64_t fan_in = 0;  // projections and biases: dummy values lie in +-1/sqrt(fan_in)
  int64_t row_begin = 0;
  int64_t num_rows = 0;
  int64_t col_begin = 0;
  int64_t num_cols = 0;     // 1 for vectors
  int64_t padded_rows = 0;  // rows the window takes in its target (>= num_rows; the rest zero)
  /// > 0 for Q and K projections (and their biases): the number of heads their rows form. GGUF
  /// files of GGML's pairwise-RoPE architectures (`llama`) store the rows of each head permuted;
  /// the loader un-permutes them so the weights are Hugging Face's.
  int64_t rope_heads = 0;
  /// >= 0: the tensor is expert `gguf_expert`'s matrix (`shape`) of a GGUF file's stacked
  /// [gguf_num_experts, shape...] tensor (ffn_{gate,up,down}_exps), which the loader slices.
  int64_t gguf_expert = -1;
  int64_t gguf_num_experts = 0;
  /// Vectors: added to every element read from a Hugging Face checkpoint. Gemma's RMSNorm scales
  /// by (1 + w) and stores w; llama.cpp's converter stores 1 + w in GGUF. With 1 added on the way
  /// in from safetensors, both load as the plain RMSNorm weight.
  float hf_offset = 0.0f;
  int32_t target = 0;  // index into WeightPlan::targets
  // Where the whole tensor sits in the unsharded model, for dummy weights (a function of these,
  // so that a shard's dummy weights are slices of the unsharded ones): the index of its fused
  // destination and the element offset into it.
  uint64_t full_index = 0;
  int64_t full_offset = 0;

  int64_t cols() const { return shape.size() == 2 ? shape[1] : 1; }
  bool is_vector() const { return shape.size() == 1; }
};

/// The slots of a model's weights, bound to a ModelWeights (which must not move until loaded).
struct WeightPlan {
  std::vector<WeightTarget> targets;
  std::vector<WeightSlot> slots;  // a target's slots are consecutive, in row order
  /// Checkpoint entries that are not weights (buffers some exporters save, a tied model's stray
  /// lm_head, GGUF's rope_freqs): the loaders skip them instead of calling them unexpected.
  std::function<bool(std::string_view)> ignorable_hf;
  std::function<bool(std::string_view)> ignorable_gguf;
  /// Hugging Face tensors another rank holds whole (expert parallelism): part of the model, so
  /// not unexpected, but not loaded here. (GGUF stacks the experts, which every rank reads.)
  absl::flat_hash_set<std::string> elsewhere_hf;
};

/// One KV cache group's view of a batch (common/kv_cache_groups.h): where the group's layers
/// write each token and the group's block tables.
struct KvGroupBatch {
  const int64_t* slot_mapping = nullptr;  // [num_tokens]
  const int32_t* block_tables = nullptr;  // [num_seqs, max_blocks_per_seq]
};

/// A step's flattened batch, prepared by ModelRunner: the new tokens of every sequence packed in
/// one [num_tokens] range, the paged-attention metadata of kernels/paged_attention.h. Every index
/// is valid (checked once per step).
struct ForwardBatch {
  int64_t num_tokens = 0;
  const int32_t* token_ids = nullptr;     // [num_tokens]
  const int32_t* positions = nullptr;     // [num_tokens]
  const int64_t* slot_mapping = nullptr;  // [num_tokens]: KV cache slot of each token
  int64_t num_seqs = 0;
  const int32_t* query_start_loc = nullptr;  // [num_seqs + 1]
  const int32_t* seq_lens = nullptr;         // [num_seqs]
  const int32_t* block_tables = nullptr;     // [num_seqs, max_blocks_per_seq]
  int64_t max_blocks_per_seq = 0;
  int64_t max_query_len = 0;  // the longest sequence's new tokens (paged attention's CUDA plan)
  /// KV cache groups: slot_mapping and block_tables above are group 0's, these groups 1..G-1's.
  /// Per layer, its group and its key/value slot in the cache. All empty with one group (layer l
  /// uses slot l and the tables above).
  absl::Span<const KvGroupBatch> more_groups;
  absl::Span<const int32_t> layer_group;  // [num_layers]
  absl::Span<const int32_t> layer_slot;   // [num_layers]
};

/// What a forward pass works with besides its weights.
struct ForwardContext {
  ForwardBatch batch;
  KvCache* kv_cache = nullptr;           // this rank's heads
  Communicator* communicator = nullptr;  // nullptr when unsharded
  /// Where the weights, the activations, the KV cache and every array of `batch` live (the
  /// model's device); every kernel call of the pass carries it. The spans more_groups,
  /// layer_group and layer_slot are host arrays (their groups' pointers are on the device).
  Device device = Device::kCpu;

  /// Sums a row-parallel projection's partial outputs over the ranks (a no-op unsharded); on
  /// CUDA `data` is device memory and the communicator one that takes it (NCCL).
  absl::Status AllReduce(float* data, int64_t count) const {
    return communicator == nullptr ? absl::OkStatus() : communicator->AllReduceSum(data, count);
  }
};

/// One shard of a model, ready to run.
class Model {
 public:
  virtual ~Model() = default;

  /// hidden [num_tokens, hidden_size] <- the final-normed hidden state of every token of the
  /// batch; writes the batch's keys and values into the cache.
  virtual absl::Status Forward(const ForwardContext& context, float* hidden) = 0;
  /// logits [rows, layout.vocab_rows] <- this rank's LM head rows applied to hidden [rows,
  /// hidden_size] (ModelRunner all-gathers the ranks' columns).
  virtual absl::Status ComputeLogits(const float* hidden, int64_t rows, float* logits) = 0;

  virtual const ModelWeights& weights() const = 0;
};

struct ModelOptions {
  int64_t max_positions = 0;  // positions the RoPE table covers
  /// Where the model runs: its weights must already be there (ModelRunner moves them), and it
  /// keeps its activations and tables there. kCuda only where CheckDevice allows it.
  Device device = Device::kCpu;
};

/// A family of architectures sharing one definition (e.g. Llama, Mistral, Qwen2).
class ModelArchitecture {
 public:
  virtual ~ModelArchitecture() = default;

  /// The family's name, for logs ("llama").
  virtual std::string_view name() const = 0;
  /// The slots of `config`'s weights on the shard of `layout`, bound to `weights` (whose layers
  /// it sizes).
  virtual WeightPlan PlanWeights(const ModelConfig& config, const ShardLayout& layout,
                                 ModelWeights& weights) const = 0;
  /// OK when the family can run `config` on `device` (every family runs on the CPU);
  /// Unimplemented naming the architecture or the feature that has no device path otherwise.
  /// Asked before any weight moves to the device.
  virtual absl::Status CheckDevice(const ModelConfig& config, Device device) const {
    if (device == Device::kCpu) return absl::OkStatus();
    return absl::UnimplementedError(absl::StrCat("architecture ", config.architecture, " (the ",
                                                 std::string(name()), " family) has no ",
                                                 std::string(DeviceName(device)), " forward pass"));
  }
  /// The model of `weights` (those of the shard of `layout`; InvalidArgument otherwise).
  virtual absl::StatusOr<std::unique_ptr<Model>> CreateModel(const ModelConfig& config,
                                                             const ShardLayout& layout,
                                                             ModelWeights weights,
                                                             const ModelOptions& options) const = 0;
};

}  // namespace pagoda
