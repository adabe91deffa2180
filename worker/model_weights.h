// The weights of a model, as typed tensors (kernels/tensor.h), and their loaders: a Hugging Face
// directory of safetensors, a GGUF file, or deterministic random ("dummy") weights. The names a
// checkpoint uses and where each tensor goes come from the architecture's model definition
// (worker/models/, PlanWeights); the loaders here only carry the plan out.
//
// Stored types: projections, embeddings and the LM head keep the type of their checkpoint — a
// GGUF tensor its GGUF type (F32, F16, BF16 or a block format: a quantized weight stays quantized
// and the GEMM dequantizes it block by block), a safetensors tensor the `dtype` option's type
// (default: the checkpoint's torch_dtype, so a BF16 checkpoint takes half the memory of an fp32
// copy). Norm weights and biases are always fp32. q/k/v and gate/up are fused into one matrix
// per LinearWeight where their stored types agree, and kept as consecutive parts otherwise (a
// Q4_K_M file stores attn_v in Q6_K beside Q4_K attn_q/attn_k).
//
// Under tensor parallelism a rank holds only its shard (tensor_parallel.h says which part of each
// weight): the shapes below are this rank's, with local head counts, local intermediate size and
// V' LM head rows. A quantized row is never split inside a block: a column shard (o_proj,
// down_proj) that does not start and end on block boundaries is refused.
//
//   ASSIGN_OR_RETURN(ModelConfig config, ModelConfig::FromDirectory(dir));
//   ASSIGN_OR_RETURN(ModelWeights weights, LoadModelWeights(config, dir));   // safetensors
//   ASSIGN_OR_RETURN(ModelSource gguf, ModelSource::Open("m.Q4_K_M.gguf"));
//   ASSIGN_OR_RETURN(ModelWeights q4, LoadModelWeights(gguf));               // GGUF
//   ASSIGN_OR_RETURN(ModelWeights bf16,
//                    LoadModelWeights(config, dir, {}, {.dtype = DType::kBF16}));
//   ModelWeights dummy = DummyModelWeights(config, /*seed=*/0);  // --load-format dummy
//   ASSIGN_OR_RETURN(ModelWeights shard, LoadModelWeights(config, dir, {.rank = 1, .size = 2}));
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/dtype.h"
#include "common/model_config.h"
#include "common/model_source.h"
#include "kernels/tensor.h"
#include "worker/tensor_parallel.h"

namespace pagoda {

/// A projection's weight [out_features, in_features] (PyTorch's layout) as one or more row blocks
/// stacked along the output dim, each in its own DType: part i computes output columns
/// [sum of the rows before it, + its rows). One part when the checkpoint's types agree.
struct LinearWeight {
  std::vector<Tensor> parts;  // each [rows_i, in_features]
  /// Empty, or one per part: that part packed for the CPU GEMM (kernels::PackGemmWeights), or
  /// null where it has no packed form. In ModelWeights::cpu_buffer (cpu_weight_placement.h).
  std::vector<const void*> packed;

  bool empty() const { return parts.empty(); }
  int64_t out_features() const;
  int64_t in_features() const { return parts.empty() ? 0 : parts[0].cols(); }
  int64_t num_bytes() const;
  /// All parts dequantized and stacked: [out_features, in_features] row-major.
  std::vector<float> ToFloats() const;
  /// One fp32 part holding `values` ([out_features, in_features] row-major).
  static LinearWeight FromFloats(int64_t out_features, int64_t in_features,
                                 std::span<const float> values);
};

/// A sparse layer's mixture of experts (Qwen3-MoE, Mixtral). Every rank holds the whole router
/// and its slice of every expert, or with expert parallelism its whole experts (local experts
/// and moe_intermediate, their width, as in ShardLayout).
struct ExpertWeights {
  LinearWeight router;                     // [num_experts, hidden]
  std::vector<LinearWeight> gate_up_proj;  // [local experts] of [2 * moe_intermediate, hidden]
  std::vector<LinearWeight> down_proj;     // [local experts] of [hidden, moe_intermediate]

  bool empty() const { return router.empty(); }
};

// Sizes are local to the shard: q_size, kv_size and intermediate as in ShardLayout.
struct LayerWeights {
  Tensor input_layernorm;           // fp32 [hidden]
  LinearWeight qkv_proj;            // [q_size + 2 * kv_size, hidden] rows: q, k, v
  Tensor qkv_bias;                  // fp32 [q_size + 2 * kv_size]; empty without bias
  Tensor q_norm;                    // fp32 [head_dim], every rank; empty without qk_norm
  Tensor k_norm;                    // fp32 [head_dim], every rank; empty without qk_norm
  LinearWeight o_proj;              // [hidden, q_size]
  Tensor o_bias;                    // fp32 [hidden]; empty without bias and off rank 0
  Tensor post_attention_layernorm;  // fp32 [hidden]
  LinearWeight gate_up_proj;        // [2 * intermediate, hidden] rows: gate, up; empty when sparse
  LinearWeight down_proj;           // [hidden, intermediate]; empty when sparse
  ExpertWeights experts;            // config.IsMoeLayer(layer) only
  // Gemma's sandwich norms: RMSNorm of the attention and MLP outputs before their residual adds
  // (fp32 [hidden]; empty elsewhere).
  Tensor attn_output_norm;
  Tensor mlp_output_norm;
};

struct ModelWeights {
  Tensor embed_tokens;               // [vocab, hidden], replicated; any DType
  std::vector<LayerWeights> layers;  // [num_hidden_layers]
  Tensor norm;                       // fp32 [hidden]
  /// [vocab_rows, hidden]: this rank's rows of the LM head (all of it without tensor
  /// parallelism); empty when tie_word_embeddings and unsharded (the embedding serves).
  Tensor lm_head;

  /// lm_head_or_embedding() packed for the CPU GEMM, or null (as LinearWeight::packed).
  const void* packed_lm_head = nullptr;
  /// The buffer that the moved and packed weights live in (cpu_weight_placement.h), or null.
  std::shared_ptr<const std::byte> cpu_buffer;
  /// Bytes of the packed forms in cpu_buffer (LinearWeight::packed, packed_lm_head): storage the
  /// weights take beside their stored forms.
  int64_t packed_bytes = 0;

  const Tensor& lm_head_or_embedding() const { return lm_head.empty() ? embed_tokens : lm_head; }
  /// Bytes of distinct weight storage (tied embeddings counted once), packed forms included.
  int64_t num_bytes() const;
};

struct WeightLoadOptions {
  /// The type safetensors (and dummy) projections, embeddings and LM heads are stored in: F32,
  /// F16 or BF16. nullopt ("auto"): the checkpoint's torch_dtype for safetensors, F32 for dummy
  /// weights, each tensor's own type for GGUF. A GGUF file accepts only nullopt.
  std::optional<DType> dtype;
};

/// Loads the weights of `config` from `path`: a GGUF file (IsGgufPath), or else a directory with
/// model.safetensors or the shards listed in model.safetensors.index.json. Every tensor's dtype
/// and shape is checked against `config`; missing tensors and unexpected ones are errors naming
/// the file and the tensor. With a shard, only its slices are read from the memory-mapped files;
/// an invalid shard, or one that would split a quantized block, is InvalidArgument. A GGUF
/// tensor that is wholly this rank's and needs no change is not copied: the weights keep the
/// file mapped and view it.
absl::StatusOr<ModelWeights> LoadModelWeights(const ModelConfig& config, const std::string& path,
                                              const TensorParallelShard& shard = {},
                                              const WeightLoadOptions& options = {});

/// LoadModelWeights for an opened model (its config, and its GGUF mapping when it is one).
absl::StatusOr<ModelWeights> LoadModelWeights(const ModelSource& model,
                                              const TensorParallelShard& shard = {},
                                              const WeightLoadOptions& options = {});

/// A copy of `weights` on `device`, for kernels with that `.device`: norms and biases stay fp32;
/// projections, the embedding and the LM head keep an F32, F16 or BF16 type (F32 stays F32: the
/// exact path) and any other type — GGUF's quantized blocks — is dequantized and rounded to BF16
/// on the way (the device GEMM and embedding take F32, F16 and BF16 only). A tied LM head stays
/// one storage. kCpu: the same tensors (shared storage, nothing copied). Errors as
/// Tensor::CopyTo (FailedPrecondition without a CUDA device, ResourceExhausted naming the bytes).
absl::StatusOr<ModelWeights> CopyModelWeightsTo(const ModelWeights& weights, Device device);

/// One weight tensor as CopyModelWeightsTo stores it, on `device` (kCpu too: an owned host copy):
/// F32, F16 and BF16 as they are; any other type dequantized and rounded to nearest-even BF16.
/// An empty tensor stays empty.
absl::StatusOr<Tensor> DeviceWeightTensor(const Tensor& tensor, Device device);

/// Deterministic random weights for `config` (same seed, same weights, whatever the thread
/// count): projections and biases uniform in +-1/sqrt(fan_in) (PyTorch's nn.Linear default),
/// norms 1, embeddings and lm_head uniform in +-0.1, so activations and logits stay O(1); then
/// stored in options.dtype (default F32). A shard's weights are exactly its slices of the
/// unsharded ones, so every tensor-parallel size computes the same function. `shard` must be
/// valid (ValidateTensorParallel) and options.dtype F32, F16 or BF16.
ModelWeights DummyModelWeights(const ModelConfig& config, uint64_t seed,
                               const TensorParallelShard& shard = {},
                               const WeightLoadOptions& options = {});

}  // namespace pagoda
