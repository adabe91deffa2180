#include "worker/models/gemma.h"

#include <cmath>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/activation.h"
#include "kernels/rotary.h"
#include "worker/models/decoder_blocks.h"
#include "worker/models/decoder_plan.h"

namespace pagoda {
namespace {

class GemmaModel final : public Model {
 public:
  GemmaModel(const ModelConfig& config, const ShardLayout& layout, ModelWeights weights,
             kernels::RopeCache global_rope, kernels::RopeCache local_rope,
             Tensor device_global_rope, Tensor device_local_rope, Device device)
      : config_(config),
        layout_(layout),
        weights_(std::move(weights)),
        global_rope_(std::move(global_rope)),
        local_rope_(std::move(local_rope)),
        device_global_rope_(std::move(device_global_rope)),
        device_local_rope_(std::move(device_local_rope)),
        device_(device),
        residual_(device),
        proj_(device),
        scratch_(device) {}

  absl::Status Forward(const ForwardContext& context, float* hidden) override;
  absl::Status ComputeLogits(const float* hidden, int64_t rows, float* logits) override;
  const ModelWeights& weights() const override { return weights_; }

 private:
  absl::Status RunLayer(const ForwardContext& context, int64_t layer, float* hidden);
  absl::Status Norm(const float* input, const Tensor& weight, float* output, float* residual,
                    int64_t num_tokens) const {
    return DecoderNorm(config_, input, weight, output, residual, num_tokens, device_);
  }

  const ModelConfig config_;
  const ShardLayout layout_;
  const ModelWeights weights_;
  const kernels::RopeCache global_rope_;
  const kernels::RopeCache local_rope_;  // the sliding layers'; empty when they share the global
  // On CUDA: the tables' device copies (empty on the CPU, and for an empty local table).
  const Tensor device_global_rope_;
  const Tensor device_local_rope_;
  const Device device_;

  // Activations on device_ (capacity reused across steps).
  ActivationBuffer residual_;  // [num_tokens, hidden]
  ActivationBuffer proj_;      // [num_tokens, hidden] output of a sub-block
  DecoderScratch scratch_;
};

absl::Status GemmaModel::Forward(const ForwardContext& context, float* hidden) {
  const int64_t num_tokens = context.batch.num_tokens;
  if (num_tokens == 0) return absl::OkStatus();
  const int64_t hidden_size = config_.hidden_size;
  ASSIGN_OR_RETURN(float* residual, residual_.Reserve(num_tokens * hidden_size));
  // Gemma scales the embedding by sqrt(hidden_size) (transformers: in the weights' dtype; here
  // fp32, as llama.cpp).
  const float normalizer = static_cast<float>(std::sqrt(static_cast<double>(hidden_size)));
  RETURN_IF_ERROR(EmbedTokens(context, config_, weights_.embed_tokens, normalizer, residual));
  RETURN_IF_ERROR(Norm(residual, weights_.layers[0].input_layernorm, hidden, nullptr, num_tokens));
  for (int64_t layer = 0; layer < config_.num_hidden_layers; ++layer) {
    RETURN_IF_ERROR(RunLayer(context, layer, hidden));
  }
  return absl::OkStatus();
}

absl::Status GemmaModel::RunLayer(const ForwardContext& context, int64_t layer, float* hidden) {
  const LayerWeights& w = weights_.layers[layer];
  const int64_t num_tokens = context.batch.num_tokens;
  const int64_t window = config_.LayerWindow(layer);
  const bool local = window > 0 && !local_rope_.cos_sin.empty();
  ASSIGN_OR_RETURN(float* proj, proj_.Reserve(num_tokens * config_.hidden_size));
  RETURN_IF_ERROR(SelfAttention(
      context, layer, config_, layout_, w,
      {.rope = local ? &local_rope_ : &global_rope_,
       .device_cos_sin = (local ? device_local_rope_ : device_global_rope_).data_as<float>(),
       .sliding_window = window,
       .logit_softcap = static_cast<float>(config_.attn_logit_softcap),
       .scale = static_cast<float>(1.0 / std::sqrt(config_.query_pre_attn_scalar))},
      hidden, scratch_, proj));
  // proj = post_attention_layernorm(proj); residual += proj; hidden = pre_feedforward(residual).
  RETURN_IF_ERROR(Norm(proj, w.attn_output_norm, proj, nullptr, num_tokens));
  RETURN_IF_ERROR(Norm(proj, w.post_attention_layernorm, hidden, residual_.data(), num_tokens));
  RETURN_IF_ERROR(GatedMlp(context, config_, layout_, w, hidden, scratch_, proj));
  RETURN_IF_ERROR(Norm(proj, w.mlp_output_norm, proj, nullptr, num_tokens));
  // The next layer's input norm (or the final norm) adds proj into the residual stream.
  const Tensor& next_norm = layer + 1 < config_.num_hidden_layers
                                ? weights_.layers[layer + 1].input_layernorm
                                : weights_.norm;
  return Norm(proj, next_norm, hidden, residual_.data(), num_tokens);
}

absl::Status GemmaModel::ComputeLogits(const float* hidden, int64_t rows, float* logits) {
  RETURN_IF_ERROR(LmHeadLogits(config_, layout_, weights_, hidden, rows, logits, device_));
  if (config_.final_logit_softcap <= 0) return absl::OkStatus();
  // Elementwise, so each rank caps its own vocabulary columns (the padding rows stay 0).
  return kernels::SoftCap({.data = logits,
                           .count = rows * layout_.vocab_rows,
                           .cap = static_cast<float>(config_.final_logit_softcap),
                           .device = device_});
}

class GemmaArchitecture final : public ModelArchitecture {
 public:
  std::string_view name() const override { return "gemma"; }
  absl::Status CheckDevice(const ModelConfig& config, Device device) const override {
    return CheckDecoderDevice(config, device);
  }
  WeightPlan PlanWeights(const ModelConfig& config, const ShardLayout& layout,
                         ModelWeights& weights) const override;
  absl::StatusOr<std::unique_ptr<Model>> CreateModel(const ModelConfig& config,
                                                     const ShardLayout& layout,
                                                     ModelWeights weights,
                                                     const ModelOptions& options) const override;
};

WeightPlan GemmaArchitecture::PlanWeights(const ModelConfig& config, const ShardLayout& layout,
                                          ModelWeights& weights) const {
  const int64_t hidden = config.hidden_size;
  constexpr float kOne = 1.0f;  // Hugging Face stores w of the (1 + w) norms
  WeightPlan plan;
  Planner p(plan);
  weights.layers.resize(config.num_hidden_layers);  // before any pointer into them is taken
  const uint64_t embedding_index = PlanEmbedding(p, config, weights);
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    LayerWeights& layer = weights.layers[i];
    const LayerNames names(i);
    PlanNorm(p, &layer.input_layernorm, names, "input_layernorm", "attn_norm", hidden, kOne);
    PlanAttention(p, config, layout, names, layer, kOne);
    PlanNorm(p, &layer.attn_output_norm, names, "post_attention_layernorm", "post_attention_norm",
             hidden, kOne);
    PlanNorm(p, &layer.post_attention_layernorm, names, "pre_feedforward_layernorm", "ffn_norm",
             hidden, kOne);
    PlanMlp(p, config, layout, names, layer);
    PlanNorm(p, &layer.mlp_output_norm, names, "post_feedforward_layernorm", "post_ffw_norm",
             hidden, kOne);
  }
  p.Target(&weights.norm);
  p.Add("model.norm.weight", "output_norm.weight", {hidden}, WeightKind::kNorm, 0).hf_offset = kOne;
  PlanLmHead(p, config, layout, weights, embedding_index);
  return plan;
}

absl::StatusOr<std::unique_ptr<Model>> GemmaArchitecture::CreateModel(
    const ModelConfig& config, const ShardLayout& layout, ModelWeights weights,
    const ModelOptions& options) const {
  RETURN_IF_ERROR(CheckDecoderShard(config, layout, weights));
  for (const LayerWeights& layer : weights.layers) {
    if (layer.attn_output_norm.num_elements() != config.hidden_size ||
        layer.mlp_output_norm.num_elements() != config.hidden_size) {
      return absl::InvalidArgumentError(
          "Gemma model weights lack the post-attention or post-feed-forward norms");
    }
  }
  if (!(config.query_pre_attn_scalar > 0)) {
    return absl::InvalidArgumentError("Gemma config has no query_pre_attn_scalar");
  }
  ASSIGN_OR_RETURN(kernels::RopeCache global_rope,
                   kernels::BuildRopeCache({.head_dim = config.head_dim,
                                            .max_positions = options.max_positions,
                                            .theta = config.rope_theta,
                                            .linear_factor = config.rope_linear_factor}));
  // The sliding layers' table, when it differs from the global one.
  kernels::RopeCache local_rope;
  const double local_theta =
      config.rope_local_theta > 0 ? config.rope_local_theta : config.rope_theta;
  if (config.sliding_window > 0 &&
      (local_theta != config.rope_theta || config.rope_linear_factor > 0)) {
    ASSIGN_OR_RETURN(local_rope, kernels::BuildRopeCache({.head_dim = config.head_dim,
                                                          .max_positions = options.max_positions,
                                                          .theta = local_theta}));
  }
  RETURN_IF_ERROR(CheckDevice(config, options.device));
  ASSIGN_OR_RETURN(Tensor device_global_rope, RopeTableOn(global_rope, options.device));
  ASSIGN_OR_RETURN(Tensor device_local_rope, RopeTableOn(local_rope, options.device));
  return std::unique_ptr<Model>(new GemmaModel(
      config, layout, std::move(weights), std::move(global_rope), std::move(local_rope),
      std::move(device_global_rope), std::move(device_local_rope), options.device));
}

}  // namespace

const ModelArchitecture& GemmaFamily() {
  static const GemmaArchitecture* const kGemma = new GemmaArchitecture();
  return *kGemma;
}

}  // namespace pagoda
