// The pieces of a Llama-style decoder that the model definitions share (llama.cc, gemma.cc): the
// embedding lookup, the RMSNorm (plain or fused with the residual add), the LM head, and the two
// sub-blocks of a layer, each ending in the all-reduce of its row-parallel projection:
//   SelfAttention: out = o_proj(attention(rope(q), rope(k), v)), q, k, v = qkv_proj(in)
//                  (per-head q/k RMSNorm first under config.qk_norm: Qwen3, Gemma 3);
//   GatedMlp:      out = down_proj(act(gate_proj(in)) * up_proj(in)), act SiLU or GELU-tanh.
// The norms and residual adds around them are the definitions' own.
//
// Everything runs on the model's device (ForwardContext::device; the activations in
// ActivationBuffers of that device).
//
//   DecoderScratch scratch(device);  // reused across steps
//   RETURN_IF_ERROR(SelfAttention(context, layer, config, layout, w,
//                                 {.rope = &rope, .sliding_window = config.LayerWindow(layer)},
//                                 hidden, scratch, proj));
//   RETURN_IF_ERROR(GatedMlp(context, config, layout, w, hidden, scratch, proj));
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "common/model_config.h"
#include "kernels/rotary.h"
#include "worker/model_weights.h"
#include "worker/models/activation_buffer.h"
#include "worker/models/model.h"
#include "worker/tensor_parallel.h"

namespace pagoda {

/// residual [num_tokens, hidden] <- the embedding rows of the batch's tokens, times `scale`
/// (Gemma: sqrt(hidden_size); 1 elsewhere).
absl::Status EmbedTokens(const ForwardContext& context, const ModelConfig& config,
                         const Tensor& embedding, float scale, float* residual);

/// output [num_tokens, hidden] <- RMSNorm(input) with `weight` (fp32 [hidden]); with `residual`,
/// residual += input first and the sum is normalized (kernels/rms_norm.h). output may alias input.
/// Everything on `device`.
absl::Status DecoderNorm(const ModelConfig& config, const float* input, const Tensor& weight,
                         float* output, float* residual, int64_t num_tokens, Device device);

/// logits [rows, layout.vocab_rows] <- this rank's LM head rows (or the tied embedding) applied
/// to hidden [rows, hidden], on `device`.
absl::Status LmHeadLogits(const ModelConfig& config, const ShardLayout& layout,
                          const ModelWeights& weights, const float* hidden, int64_t rows,
                          float* logits, Device device);

/// Activations the sub-blocks reuse across steps; widths are the shard's.
struct DecoderScratch {
  explicit DecoderScratch(Device device)
      : qkv(device), attn(device), gate_up(device), act(device) {}

  ActivationBuffer qkv;      // [num_tokens, q_size + 2 * kv_size]
  ActivationBuffer attn;     // [num_tokens, q_size]
  ActivationBuffer gate_up;  // [num_tokens, 2 * intermediate]
  ActivationBuffer act;      // [num_tokens, intermediate]
};

/// The table the RoPE kernels read on `device`: an empty tensor on the CPU (they read
/// rope.cos_sin) or with an empty table; on CUDA an fp32 device copy of rope.cos_sin.
absl::StatusOr<Tensor> RopeTableOn(const kernels::RopeCache& rope, Device device);

/// How one layer attends.
struct LayerAttention {
  const kernels::RopeCache* rope = nullptr;  // the layer's RoPE table
  const float* device_cos_sin = nullptr;     // on CUDA: the device copy of rope->cos_sin
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
