#include "worker/models/decoder_plan.h"

#include <string_view>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "worker/models/moe.h"

namespace pagoda {

LayerNames::LayerNames(int64_t layer)
    : hf(absl::StrCat("model.layers.", layer, ".")), gguf(absl::StrCat("blk.", layer, ".")) {}

uint64_t PlanEmbedding(Planner& p, const ModelConfig& config, ModelWeights& weights) {
  p.Target(&weights.embed_tokens);
  p.Add("model.embed_tokens.weight", "token_embd.weight", {config.vocab_size, config.hidden_size},
        WeightKind::kEmbedding, 0);
  return p.plan().slots.back().full_index;
}

void PlanNorm(Planner& p, Tensor* target, const LayerNames& names, const std::string& hf_suffix,
              const std::string& gguf_suffix, int64_t size, float hf_offset) {
  p.Target(target);
  p.Add(names.hf + hf_suffix + ".weight", names.gguf + gguf_suffix + ".weight", {size},
        WeightKind::kNorm, 0)
      .hf_offset = hf_offset;
}

void PlanAttention(Planner& p, const ModelConfig& config, const ShardLayout& layout,
                   const LayerNames& names, LayerWeights& layer, float norm_offset) {
  const int64_t hidden = config.hidden_size;
  const int64_t q = config.q_size();
  const int64_t kv = config.kv_size();
  const int64_t hd = config.head_dim;
  const int64_t heads = config.num_attention_heads;
  const int64_t kv_heads = config.num_key_value_heads;
  const int64_t local_q = layout.q_size();
  const int64_t local_kv = layout.kv_size();
  constexpr WeightKind kProj = WeightKind::kProjection;
  constexpr WeightKind kBias = WeightKind::kBias;
  const std::string& hf = names.hf;
  const std::string& gg = names.gguf;
  using P = Planner;

  // Column-parallel q/k/v: this rank's heads, fused as [q; k; v]. Phi-3's checkpoints hold them
  // as one qkv_proj tensor of [q; k; v] rows, of which each rank takes three windows.
  p.Target(&layer.qkv_proj);
  if (config.fused_projections) {
    const std::vector<int64_t> shape = {q + 2 * kv, hidden};
    const std::string hf_name = hf + "self_attn.qkv_proj.weight";
    const std::string gg_name = gg + "attn_qkv.weight";
    P::Rows(p.Add(hf_name, gg_name, shape, kProj, hidden), layout.head_begin * hd, local_q);
    P::Rows(p.Add(hf_name, gg_name, shape, kProj, hidden), q + layout.kv_head_begin * hd, local_kv);
    P::Rows(p.Add(hf_name, gg_name, shape, kProj, hidden), q + kv + layout.kv_head_begin * hd,
            local_kv);
  } else {
    P::Rows(p.Add(hf + "self_attn.q_proj.weight", gg + "attn_q.weight", {q, hidden}, kProj, hidden),
            layout.head_begin * hd, local_q)
        .rope_heads = heads;
    P::Rows(p.Add(hf + "self_attn.k_proj.weight", gg + "attn_k.weight", {kv, hidden}, kProj, hidden,
                  q * hidden),
            layout.kv_head_begin * hd, local_kv)
        .rope_heads = kv_heads;
    P::Rows(p.Add(hf + "self_attn.v_proj.weight", gg + "attn_v.weight", {kv, hidden}, kProj, hidden,
                  (q + kv) * hidden),
            layout.kv_head_begin * hd, local_kv);
  }
  if (config.qk_norm) {
    // Per-head norms: every rank holds the whole [head_dim] weights.
    PlanNorm(p, &layer.q_norm, names, "self_attn.q_norm", "attn_q_norm", hd, norm_offset);
    PlanNorm(p, &layer.k_norm, names, "self_attn.k_norm", "attn_k_norm", hd, norm_offset);
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
}

void PlanMlp(Planner& p, const ModelConfig& config, const ShardLayout& layout,
             const LayerNames& names, LayerWeights& layer) {
  const int64_t hidden = config.hidden_size;
  const int64_t inter = config.intermediate_size;
  const int64_t local_inter = layout.intermediate_size;
  constexpr WeightKind kProj = WeightKind::kProjection;
  const std::string& hf = names.hf;
  const std::string& gg = names.gguf;
  using P = Planner;
  p.Target(&layer.gate_up_proj);
  if (config.fused_projections) {
    // Phi-3's gate_up_proj (GGUF: ffn_up) = [gate; up] rows.
    const std::vector<int64_t> shape = {2 * inter, hidden};
    const std::string hf_name = hf + "mlp.gate_up_proj.weight";
    const std::string gg_name = gg + "ffn_up.weight";
    P::Rows(p.Add(hf_name, gg_name, shape, kProj, hidden), layout.intermediate_begin, local_inter);
    P::Rows(p.Add(hf_name, gg_name, shape, kProj, hidden), inter + layout.intermediate_begin,
            local_inter);
  } else {
    P::Rows(
        p.Add(hf + "mlp.gate_proj.weight", gg + "ffn_gate.weight", {inter, hidden}, kProj, hidden),
        layout.intermediate_begin, local_inter);
    P::Rows(p.Add(hf + "mlp.up_proj.weight", gg + "ffn_up.weight", {inter, hidden}, kProj, hidden,
                  inter * hidden),
            layout.intermediate_begin, local_inter);
  }
  p.Target(&layer.down_proj);
  P::Cols(p.Add(hf + "mlp.down_proj.weight", gg + "ffn_down.weight", {hidden, inter}, kProj, inter),
          layout.intermediate_begin, local_inter);
}

void PlanLmHead(Planner& p, const ModelConfig& config, const ShardLayout& layout,
                ModelWeights& weights, uint64_t embedding_index) {
  const int64_t hidden = config.hidden_size;
  // Vocab-parallel LM head: V' rows per rank, those past the vocabulary left zero. A tied head
  // needs its own copy of the embedding rows only when sharded.
  const bool sharded = layout.shard.size > 1;
  const bool tied = config.tie_word_embeddings;
  if (!tied || sharded) {
    p.Target(&weights.lm_head);
    WeightSlot& head = tied ? p.Add("model.embed_tokens.weight", "token_embd.weight",
                                    {config.vocab_size, hidden}, WeightKind::kEmbedding, 0)
                            : p.Add("lm_head.weight", "output.weight", {config.vocab_size, hidden},
                                    WeightKind::kEmbedding, 0);
    if (tied) head.full_index = embedding_index;
    Planner::Rows(head, layout.vocab_begin, layout.vocab_valid_rows);
    head.padded_rows = layout.vocab_rows;
  }
  p.plan().ignorable_hf = [tied](std::string_view name) {
    if (absl::EndsWith(absl::string_view(name.data(), name.size()), "rotary_emb.inv_freq")) {
      return true;
    }
    return tied && name == "lm_head.weight";  // tied: the embedding wins
  };
  // Llama 3's frequency divisors and Phi-3's LongRoPE factors, already read into
  // config.rope_scaling / config.longrope by ModelConfigFromGguf.
  p.plan().ignorable_gguf = [](std::string_view name) {
    return name == "rope_freqs.weight" || name == "rope_factors_long.weight" ||
           name == "rope_factors_short.weight";
  };
}

absl::Status CheckDecoderShard(const ModelConfig& config, const ShardLayout& layout,
                               const ModelWeights& weights) {
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
  return absl::OkStatus();
}

absl::Status CheckDecoderDevice(const ModelConfig& config, Device device) {
  if (device == Device::kCpu) return absl::OkStatus();
  const std::string where =
      absl::StrCat(config.architecture, " on ", std::string(DeviceName(device)), ": ");
  if (config.num_experts > 0) {
    return absl::UnimplementedError(
        absl::StrCat(where, "the mixture-of-experts layers have no device path yet"));
  }
  if (config.rotated_dims() != config.head_dim) {
    return absl::UnimplementedError(absl::StrCat(where, "partial rotary (rotary_dim ",
                                                 config.rotary_dim, " of head_dim ",
                                                 config.head_dim, ") has no device path yet"));
  }
  if (config.head_dim > 256) {
    return absl::UnimplementedError(absl::StrCat(
        where, "the device attention handles head_dim <= 256, the model has ", config.head_dim));
  }
  return absl::OkStatus();
}

}  // namespace pagoda
