// The weights of a LLaMA-family model in fp32, laid out for the CPU forward pass: q/k/v and
// gate/up projections are fused so one GEMM computes each. Under tensor parallelism a rank holds
// only its shard (tensor_parallel.h says which part of each weight): the shapes below are this
// rank's, with local head counts, local intermediate size and V' LM head rows.
//
//   ASSIGN_OR_RETURN(ModelConfig config, ModelConfig::FromDirectory(dir));
//   ASSIGN_OR_RETURN(ModelWeights weights, LoadModelWeights(config, dir));   // safetensors
//   ModelWeights dummy = DummyModelWeights(config, /*seed=*/0);             // --load-format dummy
//   ASSIGN_OR_RETURN(ModelWeights shard, LoadModelWeights(config, dir, {.rank = 1, .size = 2}));
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model_config.h"
#include "worker/tensor_parallel.h"

namespace pagoda {

// Sizes are local to the shard: q_size, kv_size and intermediate as in ShardLayout.
struct LayerWeights {
  std::vector<float> input_layernorm;           // [hidden]
  std::vector<float> qkv_proj;                  // [q_size + 2 * kv_size, hidden] rows: q, k, v
  std::vector<float> qkv_bias;                  // [q_size + 2 * kv_size], empty without bias
  std::vector<float> o_proj;                    // [hidden, q_size]
  std::vector<float> o_bias;                    // [hidden]; empty without bias and off rank 0
  std::vector<float> post_attention_layernorm;  // [hidden]
  std::vector<float> gate_up_proj;              // [2 * intermediate, hidden] rows: gate, up
  std::vector<float> down_proj;                 // [hidden, intermediate]
};

struct ModelWeights {
  std::vector<float> embed_tokens;   // [vocab, hidden], replicated
  std::vector<LayerWeights> layers;  // [num_hidden_layers]
  std::vector<float> norm;           // [hidden]
  /// [vocab_rows, hidden]: this rank's rows of the LM head (all of it without tensor
  /// parallelism); empty when tie_word_embeddings and unsharded (the embedding serves).
  std::vector<float> lm_head;

  const std::vector<float>& lm_head_or_embedding() const {
    return lm_head.empty() ? embed_tokens : lm_head;
  }
  /// Bytes of distinct weight storage (tied embeddings counted once).
  int64_t num_bytes() const;
};

/// Loads DIR/model.safetensors or the shards listed in DIR/model.safetensors.index.json,
/// converting F32/F16/BF16 to fp32. Every tensor's dtype and shape is checked against `config`;
/// missing tensors and unexpected ones are errors naming the file and the tensor. With a shard,
/// only its slices are read from the memory-mapped files; an invalid shard is InvalidArgument.
absl::StatusOr<ModelWeights> LoadModelWeights(const ModelConfig& config, const std::string& dir,
                                              const TensorParallelShard& shard = {});

/// Deterministic random weights for `config` (same seed, same weights, whatever the thread
/// count): projections and biases uniform in +-1/sqrt(fan_in) (PyTorch's nn.Linear default),
/// norms 1, embeddings and lm_head uniform in +-0.1, so activations and logits stay O(1).
/// A shard's weights are exactly its slices of the unsharded ones, so every tensor-parallel
/// size computes the same function. `shard` must be valid (ValidateTensorParallel).
ModelWeights DummyModelWeights(const ModelConfig& config, uint64_t seed,
                               const TensorParallelShard& shard = {});

}  // namespace pagoda
