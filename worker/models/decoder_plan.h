// The weight plan (model.h) of a Llama-style decoder, in pieces that the model definitions share:
// the embedding, a layer's q/k/v and o projections (with Qwen3/Gemma 3 per-head q/k norms and
// biases where the config has them), its gated MLP, a norm vector, and the vocab-parallel LM head.
// Each piece knows the Hugging Face and GGUF names of its tensors and the window a tensor-parallel
// rank holds (tensor_parallel.h): q/k/v and gate/up column-parallel, o_proj and down_proj
// row-parallel, the LM head vocab-parallel, embedding and norms whole.
//
//   WeightPlan plan;
//   Planner p(plan);
//   weights.layers.resize(config.num_hidden_layers);
//   const uint64_t embedding = PlanEmbedding(p, config, weights);
//   PlanNorm(p, &layer.input_layernorm, LayerNames(0), "input_layernorm", "attn_norm", hidden);
//   PlanAttention(p, config, layout, LayerNames(0), layer);
//   PlanMlp(p, config, layout, LayerNames(0), layer);
//   PlanLmHead(p, config, layout, weights, embedding);
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/model_config.h"
#include "worker/model_weights.h"
#include "worker/models/model.h"
#include "worker/models/weight_planner.h"
#include "worker/tensor_parallel.h"

namespace pagoda {

/// The name prefixes of layer `layer`: "model.layers.N." and "blk.N.".
struct LayerNames {
  explicit LayerNames(int64_t layer);
  std::string hf;
  std::string gguf;
};

/// The embedding [vocab, hidden], replicated; returns its full tensor index (for a tied head).
uint64_t PlanEmbedding(Planner& p, const ModelConfig& config, ModelWeights& weights);

/// A norm vector [size], whole on every rank: names.hf + hf_suffix + ".weight" / names.gguf +
/// gguf_suffix + ".weight". `hf_offset`: see WeightSlot (Gemma's (1 + w) norms: 1).
void PlanNorm(Planner& p, Tensor* target, const LayerNames& names, const std::string& hf_suffix,
              const std::string& gguf_suffix, int64_t size, float hf_offset = 0.0f);

/// q/k/v fused as [q; k; v] (this rank's heads; biases when config.attention_bias), the per-head
/// q/k norms when config.qk_norm (`norm_offset` as PlanNorm's hf_offset), o_proj (this rank's
/// columns; its bias on rank 0 when config.o_proj_bias).
void PlanAttention(Planner& p, const ModelConfig& config, const ShardLayout& layout,
                   const LayerNames& names, LayerWeights& layer, float norm_offset = 0.0f);

/// gate/up fused as [gate; up] (this rank's rows) and down_proj (this rank's columns).
void PlanMlp(Planner& p, const ModelConfig& config, const ShardLayout& layout,
             const LayerNames& names, LayerWeights& layer);

/// The vocab-parallel LM head: V' rows per rank, those past the vocabulary zero; a tied head is
/// planned (from the embedding, `embedding_index`) only when sharded. Sets the plan's ignorable
/// names: rotary_emb.inv_freq buffers, a tied model's stray lm_head, GGUF's rope_freqs.
void PlanLmHead(Planner& p, const ModelConfig& config, const ShardLayout& layout,
                ModelWeights& weights, uint64_t embedding_index);

/// OK when `weights` have the shapes of the shard of `layout` (projections, the LM head, the
/// input and post-attention norms, the q/k norms under config.qk_norm); InvalidArgument naming
/// the rank otherwise.
absl::Status CheckDecoderShard(const ModelConfig& config, const ShardLayout& layout,
                               const ModelWeights& weights);

/// The decoders' (llama.cc, gemma.cc) ModelArchitecture::CheckDevice: OK on the CPU; on CUDA,
/// Unimplemented naming the first feature of `config` that has no device path yet (the mixture
/// of experts, partial rotary, head_dim above 256).
absl::Status CheckDecoderDevice(const ModelConfig& config, Device device);

}  // namespace pagoda
