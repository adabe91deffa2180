#include "worker/models/decoder_blocks.h"

#include "common/status_macros.h"
#include "kernels/activation.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/gemm.h"
#include "kernels/rms_norm.h"
#include "worker/models/layers.h"

namespace pagoda {

absl::StatusOr<Tensor> RopeTableOn(const kernels::RopeCache& rope, Device device) {
  if (device == Device::kCpu || rope.cos_sin.empty()) return Tensor();
  return Tensor::FromFloats({static_cast<int64_t>(rope.cos_sin.size())}, rope.cos_sin)
      .CopyTo(device);
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
                                      .token_ids_checked = true,
                                      .device = context.device}));
  if (scale == 1.0f) return absl::OkStatus();
  return kernels::Scale({.data = residual,
                         .count = num_tokens * config.hidden_size,
                         .factor = scale,
                         .device = context.device});
}

absl::Status DecoderNorm(const ModelConfig& config, const float* input, const Tensor& weight,
                         float* output, float* residual, int64_t num_tokens, Device device) {
  return kernels::RmsNorm({.input = input,
                           .weight = weight.data_as<float>(),
                           .output = output,
                           .residual = residual,
                           .num_tokens = num_tokens,
                           .hidden_size = config.hidden_size,
                           .eps = static_cast<float>(config.rms_norm_eps),
                           .device = device});
}

absl::Status LmHeadLogits(const ModelConfig& config, const ShardLayout& layout,
                          const ModelWeights& weights, const float* hidden, int64_t rows,
                          float* logits, Device device) {
  const Tensor& head = weights.lm_head_or_embedding();
  return kernels::Gemm({.a = hidden,
                        .b = head.data(),
                        .b_dtype = head.dtype(),
                        .b_packed = weights.packed_lm_head,
                        .c = logits,
                        .m = rows,
                        .n = layout.vocab_rows,
                        .k = config.hidden_size,
                        .device = device});
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
  const Device device = context.device;
  ASSIGN_OR_RETURN(float* qkv, scratch.qkv.Reserve(num_tokens * qkv_width));
  RETURN_IF_ERROR(Linear(in, num_tokens, w.qkv_proj, w.qkv_bias, qkv, device));
  float* q = qkv;
  float* k = qkv + q_size;
  float* v = qkv + q_size + kv_size;
  if (config.qk_norm) {  // RMSNorm of each head of q and k, before RoPE
    const float eps = static_cast<float>(config.rms_norm_eps);
    RETURN_IF_ERROR(HeadRmsNorm(q, num_tokens, qkv_width, layout.num_heads, config.head_dim,
                                w.q_norm, eps, device));
    RETURN_IF_ERROR(HeadRmsNorm(k, num_tokens, qkv_width, layout.num_kv_heads, config.head_dim,
                                w.k_norm, eps, device));
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
                                        .style = kernels::RotaryStyle::kRotateHalf,
                                        .device = device,
                                        .device_cos_sin = attention.device_cos_sin}));
  ASSIGN_OR_RETURN(float* attn, scratch.attn.Reserve(num_tokens * q_size));
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
  RETURN_IF_ERROR(Linear(attn, num_tokens, w.o_proj, w.o_bias, out, device));
  return context.AllReduce(out, num_tokens * config.hidden_size);
}

absl::Status GatedMlp(const ForwardContext& context, const ModelConfig& config,
                      const ShardLayout& layout, const LayerWeights& w, const float* in,
                      DecoderScratch& scratch, float* out) {
  const int64_t num_tokens = context.batch.num_tokens;
  const int64_t inter = layout.intermediate_size;
  const Device device = context.device;
  ASSIGN_OR_RETURN(float* gate_up, scratch.gate_up.Reserve(num_tokens * 2 * inter));
  RETURN_IF_ERROR(Linear(in, num_tokens, w.gate_up_proj, Tensor(), gate_up, device));
  ASSIGN_OR_RETURN(float* act, scratch.act.Reserve(num_tokens * inter));
  const kernels::SiluAndMulParams params = {
      .input = gate_up, .output = act, .num_tokens = num_tokens, .d = inter, .device = device};
  switch (config.hidden_act) {
    case MlpActivation::kSilu:
      RETURN_IF_ERROR(kernels::SiluAndMul(params));
      break;
    case MlpActivation::kGeluTanh:
      RETURN_IF_ERROR(kernels::GeluTanhAndMul(params));
      break;
  }
  RETURN_IF_ERROR(Linear(act, num_tokens, w.down_proj, Tensor(), out, device));
  return context.AllReduce(out, num_tokens * config.hidden_size);
}

}  // namespace pagoda
