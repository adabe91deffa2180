#include "worker/models/decoder_blocks.h"

#include "common/status_macros.h"
#include "kernels/activation.h"
#include "kernels/embedding.h"
#include "kernels/gemm.h"
#include "kernels/rms_norm.h"
#include "worker/models/layers.h"

namespace pagoda {

float* Reserve(std::vector<float>& buffer, int64_t n) {
  if (static_cast<int64_t>(buffer.size()) < n) buffer.resize(n);
  return buffer.data();
}

absl::Status EmbedTokens(const ForwardContext& context, const ModelConfig& config,
                         const Tensor& embedding, float scale, float* residual) {
  const int64_t num_tokens = context.batch.num_tokens;
  RETURN_IF_ERROR(kernels::Embedding({.token_ids = context.batch.token_ids,
                                      .table = embedding.data(),
                                      .table_dtype = embedding.dtype(),
                                      .output = residual,
                                      .num_tokens = num_tokens,
                                      .vocab_size = config.vocab_size,
                                      .hidden_size = config.hidden_size,
                                      .token_ids_checked = true}));
  if (scale != 1.0f) {
    for (int64_t i = 0; i < num_tokens * config.hidden_size; ++i) residual[i] *= scale;
  }
  return absl::OkStatus();
}

absl::Status DecoderNorm(const ModelConfig& config, const float* input, const Tensor& weight,
                         float* output, float* residual, int64_t num_tokens) {
  return kernels::RmsNorm({.input = input,
                           .weight = weight.data_as<float>(),
                           .output = output,
                           .residual = residual,
                           .num_tokens = num_tokens,
                           .hidden_size = config.hidden_size,
                           .eps = static_cast<float>(config.rms_norm_eps)});
}

absl::Status LmHeadLogits(const ModelConfig& config, const ShardLayout& layout,
                          const ModelWeights& weights, const float* hidden, int64_t rows,
                          float* logits) {
  const Tensor& head = weights.lm_head_or_embedding();
  return kernels::Gemm({.a = hidden,
                        .b = head.data(),
                        .b_dtype = head.dtype(),
                        .b_packed = weights.packed_lm_head,
                        .c = logits,
                        .m = rows,
                        .n = layout.vocab_rows,
                        .k = config.hidden_size});
}

absl::Status SelfAttention(const ForwardContext& context, int64_t layer, const ModelConfig& config,
                           const ShardLayout& layout, const LayerWeights& w,
                           const LayerAttention& attention, const float* in,
                           DecoderScratch& scratch, float* out) {
  // Sizes are this shard's: its heads.
  const int64_t num_tokens = context.batch.num_tokens;
  const int64_t q_size = layout.q_size();
  const int64_t kv_size = layout.kv_size();
  const int64_t qkv_width = layout.qkv_width();
  float* qkv = Reserve(scratch.qkv, num_tokens * qkv_width);
  RETURN_IF_ERROR(Linear(in, num_tokens, w.qkv_proj, w.qkv_bias, qkv));
  float* q = qkv;
  float* k = qkv + q_size;
  float* v = qkv + q_size + kv_size;
  if (config.qk_norm) {  // RMSNorm of each head of q and k, before RoPE
    const float eps = static_cast<float>(config.rms_norm_eps);
    RETURN_IF_ERROR(
        HeadRmsNorm(q, num_tokens, qkv_width, layout.num_heads, config.head_dim, w.q_norm, eps));
    RETURN_IF_ERROR(
        HeadRmsNorm(k, num_tokens, qkv_width, layout.num_kv_heads, config.head_dim, w.k_norm, eps));
  }
  RETURN_IF_ERROR(kernels::ApplyRotary({.q = q,
                                        .k = k,
                                        .positions = context.batch.positions,
                                        .cache = attention.rope,
                                        .num_tokens = num_tokens,
                                        .num_heads = layout.num_heads,
                                        .num_kv_heads = layout.num_kv_heads,
                                        .head_dim = config.head_dim,
                                        .rotary_dim = config.rotary_dim,
                                        .q_stride = qkv_width,
                                        .k_stride = qkv_width,
                                        .style = kernels::RotaryStyle::kRotateHalf}));
  float* attn = Reserve(scratch.attn, num_tokens * q_size);
  RETURN_IF_ERROR(PagedAttentionLayer(context, layer,
                                      {.q = q,
                                       .k = k,
                                       .v = v,
                                       .stride = qkv_width,
                                       .num_heads = layout.num_heads,
                                       .head_dim = config.head_dim,
                                       .sliding_window = attention.sliding_window,
                                       .logit_softcap = attention.logit_softcap,
                                       .scale = attention.scale},
                                      attn));
  // Row-parallel o_proj: each rank's heads give a partial sum (rank 0 adds the bias).
  RETURN_IF_ERROR(Linear(attn, num_tokens, w.o_proj, w.o_bias, out));
  return context.AllReduce(out, num_tokens * config.hidden_size);
}

absl::Status GatedMlp(const ForwardContext& context, const ModelConfig& config,
                      const ShardLayout& layout, const LayerWeights& w, const float* in,
                      DecoderScratch& scratch, float* out) {
  const int64_t num_tokens = context.batch.num_tokens;
  const int64_t inter = layout.intermediate_size;
  float* gate_up = Reserve(scratch.gate_up, num_tokens * 2 * inter);
  RETURN_IF_ERROR(Linear(in, num_tokens, w.gate_up_proj, Tensor(), gate_up));
  float* act = Reserve(scratch.act, num_tokens * inter);
  const kernels::SiluAndMulParams params = {
      .input = gate_up, .output = act, .num_tokens = num_tokens, .d = inter};
  switch (config.hidden_act) {
    case MlpActivation::kSilu:
      RETURN_IF_ERROR(kernels::SiluAndMul(params));
      break;
    case MlpActivation::kGeluTanh:
      RETURN_IF_ERROR(kernels::GeluTanhAndMul(params));
      break;
  }
  RETURN_IF_ERROR(Linear(act, num_tokens, w.down_proj, Tensor(), out));
  return context.AllReduce(out, num_tokens * config.hidden_size);
}

}  // namespace pagoda
