#include "worker/models/llama.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/activation.h"
#include "kernels/embedding.h"
#include "kernels/gemm.h"
#include "kernels/rms_norm.h"
#include "kernels/rotary.h"
#include "worker/models/layers.h"
#include "worker/models/moe.h"
#include "worker/models/weight_planner.h"

namespace pagoda {
namespace {

// Grows a buffer to at least n elements; the contents are overwritten by the step.
float* Reserve(std::vector<float>& buffer, int64_t n) {
  if (static_cast<int64_t>(buffer.size()) < n) buffer.resize(n);
  return buffer.data();
}

class LlamaModel final : public Model {
 public:
  LlamaModel(const ModelConfig& config, const ShardLayout& layout, ModelWeights weights,
             kernels::RopeCache rope)
      : config_(config),
        layout_(layout),
        weights_(std::move(weights)),
        rope_(std::move(rope)),
        moe_(config, layout) {}

  absl::Status Forward(const ForwardContext& context, float* hidden) override;
  absl::Status ComputeLogits(const float* hidden, int64_t rows, float* logits) override;
  const ModelWeights& weights() const override { return weights_; }

 private:
  absl::Status RunLayer(const ForwardContext& context, int64_t layer, float* hidden);
  absl::Status Norm(const float* input, const Tensor& weight, float* output, float* residual,
                    int64_t num_tokens) const {
    return kernels::RmsNorm({.input = input,
                             .weight = weight.data_as<float>(),
                             .output = output,
                             .residual = residual,
                             .num_tokens = num_tokens,
                             .hidden_size = config_.hidden_size,
                             .eps = static_cast<float>(config_.rms_norm_eps)});
  }

  const ModelConfig config_;
  const ShardLayout layout_;
  const ModelWeights weights_;
  const kernels::RopeCache rope_;
  MoeFeedForward moe_;  // the sparse layers' MLP (Qwen3-MoE, Mixtral)

  // Activations (capacity reused across steps); widths are this shard's (layout_).
  std::vector<float> residual_;  // [num_tokens, hidden]
  std::vector<float> qkv_;       // [num_tokens, q_size + 2 * kv_size]
  std::vector<float> attn_;      // [num_tokens, q_size]
  std::vector<float> proj_;      // [num_tokens, hidden] output of o_proj / down_proj
  std::vector<float> gate_up_;   // [num_tokens, 2 * intermediate]
  std::vector<float> act_;       // [num_tokens, intermediate]
};

absl::Status LlamaModel::Forward(const ForwardContext& context, float* hidden) {
  const int64_t num_tokens = context.batch.num_tokens;
  if (num_tokens == 0) return absl::OkStatus();
  const Tensor& embedding = weights_.embed_tokens;
  float* residual = Reserve(residual_, num_tokens * config_.hidden_size);
  RETURN_IF_ERROR(kernels::Embedding({.token_ids = context.batch.token_ids,
                                      .table = embedding.data(),
                                      .table_dtype = embedding.dtype(),
                                      .output = residual,
                                      .num_tokens = num_tokens,
                                      .vocab_size = config_.vocab_size,
                                      .hidden_size = config_.hidden_size,
                                      .token_ids_checked = true}));
  RETURN_IF_ERROR(Norm(residual, weights_.layers[0].input_layernorm, hidden, nullptr, num_tokens));
  for (int64_t layer = 0; layer < config_.num_hidden_layers; ++layer) {
    RETURN_IF_ERROR(RunLayer(context, layer, hidden));
  }
  return absl::OkStatus();
}

absl::Status LlamaModel::RunLayer(const ForwardContext& context, int64_t layer, float* hidden) {
  // Sizes are this shard's: its heads and its slice of the MLP.
  const LayerWeights& w = weights_.layers[layer];
  const int64_t num_tokens = context.batch.num_tokens;
  const int64_t q_size = layout_.q_size();
  const int64_t kv_size = layout_.kv_size();
  const int64_t qkv_width = layout_.qkv_width();
  const int64_t inter = layout_.intermediate_size;

  float* qkv = Reserve(qkv_, num_tokens * qkv_width);
  RETURN_IF_ERROR(Linear(hidden, num_tokens, w.qkv_proj, w.qkv_bias, qkv));
  float* q = qkv;
  float* k = qkv + q_size;
  float* v = qkv + q_size + kv_size;
  if (config_.qk_norm) {  // Qwen3: RMSNorm of each head of q and k, before RoPE
    const float eps = static_cast<float>(config_.rms_norm_eps);
    RETURN_IF_ERROR(
        HeadRmsNorm(q, num_tokens, qkv_width, layout_.num_heads, config_.head_dim, w.q_norm, eps));
    RETURN_IF_ERROR(HeadRmsNorm(k, num_tokens, qkv_width, layout_.num_kv_heads, config_.head_dim,
                                w.k_norm, eps));
  }
  RETURN_IF_ERROR(kernels::ApplyRotary({.q = q,
                                        .k = k,
                                        .positions = context.batch.positions,
                                        .cache = &rope_,
                                        .num_tokens = num_tokens,
                                        .num_heads = layout_.num_heads,
                                        .num_kv_heads = layout_.num_kv_heads,
                                        .head_dim = config_.head_dim,
                                        .rotary_dim = config_.rotary_dim,
                                        .q_stride = qkv_width,
                                        .k_stride = qkv_width,
                                        .style = kernels::RotaryStyle::kRotateHalf}));
  float* attn = Reserve(attn_, num_tokens * q_size);
  RETURN_IF_ERROR(PagedAttentionLayer(context, layer,
                                      {.q = q,
                                       .k = k,
                                       .v = v,
                                       .stride = qkv_width,
                                       .num_heads = layout_.num_heads,
                                       .head_dim = config_.head_dim,
                                       .sliding_window = config_.LayerWindow(layer)},
                                      attn));
  float* proj = Reserve(proj_, num_tokens * config_.hidden_size);
  // Row-parallel o_proj: each rank's heads give a partial sum (rank 0 adds the bias).
  RETURN_IF_ERROR(Linear(attn, num_tokens, w.o_proj, w.o_bias, proj));
  RETURN_IF_ERROR(context.AllReduce(proj, num_tokens * config_.hidden_size));
  // residual += attention output; hidden = post_attention_layernorm(residual).
  RETURN_IF_ERROR(Norm(proj, w.post_attention_layernorm, hidden, residual_.data(), num_tokens));
  if (!w.experts.empty()) {
    RETURN_IF_ERROR(moe_.Run(w.experts, hidden, num_tokens, proj));
  } else {
    float* gate_up = Reserve(gate_up_, num_tokens * 2 * inter);
    RETURN_IF_ERROR(Linear(hidden, num_tokens, w.gate_up_proj, Tensor(), gate_up));
    float* act = Reserve(act_, num_tokens * inter);
    RETURN_IF_ERROR(kernels::SiluAndMul(
        {.input = gate_up, .output = act, .num_tokens = num_tokens, .d = inter}));
    RETURN_IF_ERROR(Linear(act, num_tokens, w.down_proj, Tensor(), proj));
  }
  RETURN_IF_ERROR(context.AllReduce(proj, num_tokens * config_.hidden_size));
  // The next sub-block's norm (next layer's input norm, or the final norm) adds proj into the
  // residual stream.
  const Tensor& next_norm = layer + 1 < config_.num_hidden_layers
                                ? weights_.layers[layer + 1].input_layernorm
                                : weights_.norm;
  return Norm(proj, next_norm, hidden, residual_.data(), num_tokens);
}

absl::Status LlamaModel::ComputeLogits(const float* hidden, int64_t rows, float* logits) {
  const Tensor& head = weights_.lm_head_or_embedding();
  return kernels::Gemm({.a = hidden,
                        .b = head.data(),
                        .b_dtype = head.dtype(),
                        .c = logits,
                        .m = rows,
                        .n = layout_.vocab_rows,
                        .k = config_.hidden_size});
}

class LlamaArchitecture final : public ModelArchitecture {
 public:
  std::string_view name() const override { return "llama"; }
  WeightPlan PlanWeights(const ModelConfig& config, const ShardLayout& layout,
                         ModelWeights& weights) const override;
  absl::StatusOr<std::unique_ptr<Model>> CreateModel(const ModelConfig& config,
                                                     const ShardLayout& layout,
                                                     ModelWeights weights,
                                                     const ModelOptions& options) const override;
};

WeightPlan LlamaArchitecture::PlanWeights(const ModelConfig& config, const ShardLayout& layout,
                                          ModelWeights& weights) const {
  const int64_t hidden = config.hidden_size;
  const int64_t inter = config.intermediate_size;
  const int64_t q = config.q_size();
  const int64_t kv = config.kv_size();
  const int64_t hd = config.head_dim;
  const int64_t heads = config.num_attention_heads;
  const int64_t kv_heads = config.num_key_value_heads;
  const int64_t local_q = layout.q_size();
  const int64_t local_kv = layout.kv_size();
  const int64_t local_inter = layout.intermediate_size;
  constexpr WeightKind kProj = WeightKind::kProjection;
  constexpr WeightKind kBias = WeightKind::kBias;
  constexpr WeightKind kNorm = WeightKind::kNorm;
  using P = Planner;

  WeightPlan plan;
  Planner p(plan);
  weights.layers.resize(config.num_hidden_layers);  // before any pointer into them is taken
  p.Target(&weights.embed_tokens);
  p.Add("model.embed_tokens.weight", "token_embd.weight", {config.vocab_size, hidden},
        WeightKind::kEmbedding, 0);
  const uint64_t embedding_index = plan.slots.back().full_index;
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    LayerWeights& layer = weights.layers[i];
    const std::string hf = absl::StrCat("model.layers.", i, ".");
    const std::string gg = absl::StrCat("blk.", i, ".");
    p.Target(&layer.input_layernorm);
    p.Add(hf + "input_layernorm.weight", gg + "attn_norm.weight", {hidden}, kNorm, 0);
    // Column-parallel q/k/v: this rank's heads, fused as [q; k; v]. Phi-3's checkpoints hold
    // them as one qkv_proj tensor of [q; k; v] rows, of which each rank takes three windows.
    p.Target(&layer.qkv_proj);
    if (config.fused_projections) {
      const std::vector<int64_t> shape = {q + 2 * kv, hidden};
      const std::string hf_name = hf + "self_attn.qkv_proj.weight";
      const std::string gg_name = gg + "attn_qkv.weight";
      P::Rows(p.Add(hf_name, gg_name, shape, kProj, hidden), layout.head_begin * hd, local_q);
      P::Rows(p.Add(hf_name, gg_name, shape, kProj, hidden), q + layout.kv_head_begin * hd,
              local_kv);
      P::Rows(p.Add(hf_name, gg_name, shape, kProj, hidden), q + kv + layout.kv_head_begin * hd,
              local_kv);
    } else {
      P::Rows(
          p.Add(hf + "self_attn.q_proj.weight", gg + "attn_q.weight", {q, hidden}, kProj, hidden),
          layout.head_begin * hd, local_q)
          .rope_heads = heads;
      P::Rows(p.Add(hf + "self_attn.k_proj.weight", gg + "attn_k.weight", {kv, hidden}, kProj,
                    hidden, q * hidden),
              layout.kv_head_begin * hd, local_kv)
          .rope_heads = kv_heads;
      P::Rows(p.Add(hf + "self_attn.v_proj.weight", gg + "attn_v.weight", {kv, hidden}, kProj,
                    hidden, (q + kv) * hidden),
              layout.kv_head_begin * hd, local_kv);
    }
    if (config.qk_norm) {
      // Per-head norms: every rank holds the whole [head_dim] weights.
      p.Target(&layer.q_norm);
      p.Add(hf + "self_attn.q_norm.weight", gg + "attn_q_norm.weight", {hd}, kNorm, 0);
      p.Target(&layer.k_norm);
      p.Add(hf + "self_attn.k_norm.weight", gg + "attn_k_norm.weight", {hd}, kNorm, 0);
    }
    if (config.attention_bias) {
      p.Target(&layer.qkv_bias);
      P::Rows(p.Add(hf + "self_attn.q_proj.bias", gg + "attn_q.bias", {q}, kBias, hidden),
              layout.head_begin * hd, local_q)
          .rope_heads = heads;
      P::Rows(p.Add(hf + "self_attn.k_proj.bias", gg + "attn_k.bias", {kv}, kBias, hidden, q),
              layout.kv_head_begin * hd, local_kv)
          .rope_heads = kv_heads;
      P::Rows(p.Add(hf + "self_attn.v_proj.bias", gg + "attn_v.bias", {kv}, kBias, hidden, q + kv),
              layout.kv_head_begin * hd, local_kv);
    }
    // Row-parallel o_proj: the columns of this rank's heads.
    p.Target(&layer.o_proj);
    P::Cols(p.Add(hf + "self_attn.o_proj.weight", gg + "attn_output.weight", {hidden, q}, kProj, q),
            layout.head_begin * hd, local_q);
    if (config.o_proj_bias) {
      p.Target(&layer.o_bias);
      P::Rows(p.Add(hf + "self_attn.o_proj.bias", gg + "attn_output.bias", {hidden}, kBias, q), 0,
              layout.holds_o_bias ? hidden : 0);
    }
    p.Target(&layer.post_attention_layernorm);
    p.Add(hf + "post_attention_layernorm.weight", gg + "ffn_norm.weight", {hidden}, kNorm, 0);
    if (config.IsMoeLayer(i)) {
      PlanExperts(config, layout, i, p, layer.experts);
      continue;
    }
    p.Target(&layer.gate_up_proj);
    if (config.fused_projections) {
      // Phi-3's gate_up_proj (GGUF: ffn_up) = [gate; up] rows.
      const std::vector<int64_t> shape = {2 * inter, hidden};
      const std::string hf_name = hf + "mlp.gate_up_proj.weight";
      const std::string gg_name = gg + "ffn_up.weight";
      P::Rows(p.Add(hf_name, gg_name, shape, kProj, hidden), layout.intermediate_begin,
              local_inter);
      P::Rows(p.Add(hf_name, gg_name, shape, kProj, hidden), inter + layout.intermediate_begin,
              local_inter);
    } else {
      P::Rows(p.Add(hf + "mlp.gate_proj.weight", gg + "ffn_gate.weight", {inter, hidden}, kProj,
                    hidden),
              layout.intermediate_begin, local_inter);
      P::Rows(p.Add(hf + "mlp.up_proj.weight", gg + "ffn_up.weight", {inter, hidden}, kProj, hidden,
                    inter * hidden),
              layout.intermediate_begin, local_inter);
    }
    p.Target(&layer.down_proj);
    P::Cols(
        p.Add(hf + "mlp.down_proj.weight", gg + "ffn_down.weight", {hidden, inter}, kProj, inter),
        layout.intermediate_begin, local_inter);
  }
  p.Target(&weights.norm);
  p.Add("model.norm.weight", "output_norm.weight", {hidden}, kNorm, 0);
  // Vocab-parallel LM head: V' rows per rank, those past the vocabulary left zero. A tied head
  // needs its own copy of the embedding rows only when sharded.
  const bool sharded = layout.shard.size > 1;
  if (!config.tie_word_embeddings || sharded) {
    p.Target(&weights.lm_head);
    WeightSlot& head = config.tie_word_embeddings
                           ? p.Add("model.embed_tokens.weight", "token_embd.weight",
                                   {config.vocab_size, hidden}, WeightKind::kEmbedding, 0)
                           : p.Add("lm_head.weight", "output.weight", {config.vocab_size, hidden},
                                   WeightKind::kEmbedding, 0);
    if (config.tie_word_embeddings) head.full_index = embedding_index;
    P::Rows(head, layout.vocab_begin, layout.vocab_valid_rows);
    head.padded_rows = layout.vocab_rows;
  }
  const bool tied = config.tie_word_embeddings;
  plan.ignorable_hf = [tied](std::string_view name) {
    if (absl::EndsWith(absl::string_view(name.data(), name.size()), "rotary_emb.inv_freq")) {
      return true;
    }
    return tied && name == "lm_head.weight";  // tied: the embedding wins
  };
  // Llama 3's frequency divisors and Phi-3's LongRoPE factors, already read into
  // config.rope_scaling / config.longrope by ModelConfigFromGguf.
  plan.ignorable_gguf = [](std::string_view name) {
    return name == "rope_freqs.weight" || name == "rope_factors_long.weight" ||
           name == "rope_factors_short.weight";
  };
  return plan;
}

absl::StatusOr<std::unique_ptr<Model>> LlamaArchitecture::CreateModel(
    const ModelConfig& config, const ShardLayout& layout, ModelWeights weights,
    const ModelOptions& options) const {
  if (static_cast<int64_t>(weights.layers.size()) != config.num_hidden_layers) {
    return absl::InvalidArgumentError(absl::StrCat("model weights have ", weights.layers.size(),
                                                   " layers but the config says ",
                                                   config.num_hidden_layers));
  }
  const int64_t hidden = config.hidden_size;
  const Tensor& head = weights.lm_head_or_embedding();
  bool matches = head.rows() == layout.vocab_rows && head.cols() == hidden &&
                 weights.embed_tokens.rows() == config.vocab_size;
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    const LayerWeights& layer = weights.layers[i];
    const bool mlp_matches =
        config.IsMoeLayer(i)
            ? ExpertsMatch(config, layout, layer.experts)
            : layer.experts.empty() &&
                  layer.gate_up_proj.out_features() == 2 * layout.intermediate_size &&
                  layer.down_proj.in_features() == layout.intermediate_size;
    matches = matches && mlp_matches && layer.qkv_proj.out_features() == layout.qkv_width() &&
              layer.qkv_proj.in_features() == hidden && layer.o_proj.out_features() == hidden &&
              layer.o_proj.in_features() == layout.q_size() &&
              layer.input_layernorm.num_elements() == hidden &&
              layer.post_attention_layernorm.num_elements() == hidden &&
              (!config.qk_norm || (layer.q_norm.num_elements() == config.head_dim &&
                                   layer.k_norm.num_elements() == config.head_dim));
  }
  if (!matches) {
    return absl::InvalidArgumentError(
        absl::StrCat("model weights are not those of tensor parallel rank ", layout.shard.rank,
                     " of ", layout.shard.size));
  }
  // LongRoPE: one factor set for every position this model serves, so that cached keys keep
  // their meaning (common/rope_scaling.h).
  ASSIGN_OR_RETURN(
      kernels::RopeCache rope,
      kernels::BuildRopeCache({.head_dim = config.rotated_dims(),
                               .max_positions = options.max_positions,
                               .theta = config.rope_theta,
                               .llama3 = config.rope_scaling,
                               .freq_factors = config.longrope.FactorsFor(options.max_positions),
                               .attention_factor = config.longrope.attention_factor}));
  return std::unique_ptr<Model>(
      new LlamaModel(config, layout, std::move(weights), std::move(rope)));
}

}  // namespace

const ModelArchitecture& LlamaFamily() {
  static const LlamaArchitecture* const kLlama = new LlamaArchitecture();
  return *kLlama;
}

}  // namespace pagoda
