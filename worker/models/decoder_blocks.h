// The pieces of a Llama-style decoder that the model definitions share (llama.cc, gemma.cc): the
// embedding lookup, the RMSNorm (plain or fused with the residual add), the LM head, and the two
// sub-blocks of a layer, each ending in the all-reduce of its row-parallel projection:
//   SelfAttention: out = o_proj(attention(rope(q), rope(k), v)), q, k, v = qkv_proj(in)
//                  (per-head q/k RMSNorm first under config.qk_norm: Qwen3, Gemma 3);
//   GatedMlp:      out = down_proj(act(gate_proj(in)) * up_proj(in)), act SiLU or GELU-tanh.
// The norms and residual adds around them are the definitions' own.
//
//   DecoderScratch scratch;  // reused across steps
//   RETURN_IF_ERROR(SelfAttention(context, layer, config, layout, w,
//                                 {.rope = &rope, .sliding_window = config.LayerWindow(layer)},
//                                 hidden, scratch, proj));
//   RETURN_IF_ERROR(GatedMlp(context, config, layout, w, hidden, scratch, proj));
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "common/model_config.h"
#include "kernels/rotary.h"
#include "worker/model_weights.h"
#include "worker/models/model.h"
#include "worker/tensor_parallel.h"

namespace pagoda {

/// Grows a buffer to at least n elements; the contents are overwritten by the step.
float* Reserve(std::vector<float>& buffer, int64_t n);

/// residual [num_tokens, hidden] <- the embedding rows of the batch's tokens, times `scale`
/// (Gemma: sqrt(hidden_size); 1 elsewhere).
absl::Status EmbedTokens(const ForwardContext& context, const ModelConfig& config,
                         const Tensor& embedding, float scale, float* residual);

/// output [num_tokens, hidden] <- RMSNorm(input) with `weight` (fp32 [hidden]); with `residual`,
/// residual += input first and the sum is normalized (kernels/rms_norm.h). output may alias input.
absl::Status DecoderNorm(const ModelConfig& config, const float* input, const Tensor& weight,
                         float* output, float* residual, int64_t num_tokens);

/// logits [rows, layout.vocab_rows] <- this rank's LM head rows (or the tied embedding) applied
/// to hidden [rows, hidden].
absl::Status LmHeadLogits(const ModelConfig& config, const ShardLayout& layout,
                          const ModelWeights& weights, const float* hidden, int64_t rows,
                          float* logits);

/// Activations the sub-blocks reuse across steps; widths are the shard's.
struct DecoderScratch {
  std::vector<float> qkv;      // [num_tokens, q_size + 2 * kv_size]
  std::vector<float> attn;     // [num_tokens, q_size]
  std::vector<float> gate_up;  // [num_tokens, 2 * intermediate]
  std::vector<float> act;      // [num_tokens, intermediate]
};

/// How one layer attends.
struct LayerAttention {
  const kernels::RopeCache* rope = nullptr;  // the layer's RoPE table
  int64_t sliding_window = 0;                // 0: full attention
  float logit_softcap = 0.0f;                // 0: none
  float scale = 0.0f;                        // 0: 1 / sqrt(head_dim)
};

/// out [num_tokens, hidden] <- the attention sub-block of `layer` over in [num_tokens, hidden],
/// summed over the ranks; writes the batch's keys and values into the cache.
absl::Status SelfAttention(const ForwardContext& context, int64_t layer, const ModelConfig& config,
                           const ShardLayout& layout, const LayerWeights& w,
                           const LayerAttention& attention, const float* in,
                           DecoderScratch& scratch, float* out);

/// out [num_tokens, hidden] <- the gated MLP over in [num_tokens, hidden] with
/// config.hidden_act, summed over the ranks.
absl::Status GatedMlp(const ForwardContext& context, const ModelConfig& config,
                      const ShardLayout& layout, const LayerWeights& w, const float* in,
                      DecoderScratch& scratch, float* out);

}  // namespace pagoda
