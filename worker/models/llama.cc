#include "worker/models/llama.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/rotary.h"
#include "worker/models/decoder_blocks.h"
#include "worker/models/decoder_plan.h"
#include "worker/models/moe.h"

namespace pagoda {
namespace {

class LlamaModel final : public Model {
 public:
  LlamaModel(const ModelConfig& config, const ShardLayout& layout, ModelWeights weights,
             kernels::RopeCache rope, Tensor device_rope, Device device)
      : config_(config),
        layout_(layout),
        weights_(std::move(weights)),
        rope_(std::move(rope)),
        device_rope_(std::move(device_rope)),
        device_(device),
        moe_(config, layout),
        residual_(device),
        proj_(device),
        scratch_(device) {}

  absl::Status Forward(const ForwardContext& context, float* hidden) override;
  absl::Status ComputeLogits(const float* hidden, int64_t rows, float* logits) override {
    return LmHeadLogits(config_, layout_, weights_, hidden, rows, logits, device_);
  }
  const ModelWeights& weights() const override { return weights_; }

 private:
  absl::Status RunLayer(const ForwardContext& context, int64_t layer, float* hidden);

  const ModelConfig config_;
  const ShardLayout layout_;
  const ModelWeights weights_;
  const kernels::RopeCache rope_;
  const Tensor device_rope_;  // on CUDA: rope_.cos_sin on the device
  const Device device_;
  MoeFeedForward moe_;  // the sparse layers' MLP (Qwen3-MoE, Mixtral; CPU only)

  // Activations on device_ (capacity reused across steps).
  ActivationBuffer residual_;  // [num_tokens, hidden]
  ActivationBuffer proj_;      // [num_tokens, hidden] output of a sub-block
  DecoderScratch scratch_;
};

absl::Status LlamaModel::Forward(const ForwardContext& context, float* hidden) {
  const int64_t num_tokens = context.batch.num_tokens;
  if (num_tokens == 0) return absl::OkStatus();
  ASSIGN_OR_RETURN(float* residual, residual_.Reserve(num_tokens * config_.hidden_size));
  RETURN_IF_ERROR(EmbedTokens(context, config_, weights_.embed_tokens, 1.0f, residual));
  RETURN_IF_ERROR(DecoderNorm(config_, residual, weights_.layers[0].input_layernorm, hidden,
                              nullptr, num_tokens, device_));
  for (int64_t layer = 0; layer < config_.num_hidden_layers; ++layer) {
    RETURN_IF_ERROR(RunLayer(context, layer, hidden));
  }
  return absl::OkStatus();
}

absl::Status LlamaModel::RunLayer(const ForwardContext& context, int64_t layer, float* hidden) {
  const LayerWeights& w = weights_.layers[layer];
  const int64_t num_tokens = context.batch.num_tokens;
  ASSIGN_OR_RETURN(float* proj, proj_.Reserve(num_tokens * config_.hidden_size));
  RETURN_IF_ERROR(SelfAttention(context, layer, config_, layout_, w,
                                {.rope = &rope_,
                                 .device_cos_sin = device_rope_.data_as<float>(),
                                 .sliding_window = config_.LayerWindow(layer)},
                                hidden, scratch_, proj));
  // residual += attention output; hidden = post_attention_layernorm(residual).
  RETURN_IF_ERROR(DecoderNorm(config_, proj, w.post_attention_layernorm, hidden, residual_.data(),
                              num_tokens, device_));
  if (w.experts.empty()) {
    RETURN_IF_ERROR(GatedMlp(context, config_, layout_, w, hidden, scratch_, proj));
  } else {
    // Each rank holds a slice of every expert: its output is a partial sum, like down_proj's.
    RETURN_IF_ERROR(moe_.Run(w.experts, hidden, num_tokens, proj));
    RETURN_IF_ERROR(context.AllReduce(proj, num_tokens * config_.hidden_size));
  }
  // The next sub-block's norm (next layer's input norm, or the final norm) adds proj into the
  // residual stream.
  const Tensor& next_norm = layer + 1 < config_.num_hidden_layers
                                ? weights_.layers[layer + 1].input_layernorm
                                : weights_.norm;
  return DecoderNorm(config_, proj, next_norm, hidden, residual_.data(), num_tokens, device_);
}

class LlamaArchitecture final : public ModelArchitecture {
 public:
  std::string_view name() const override { return "llama"; }
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

WeightPlan LlamaArchitecture::PlanWeights(const ModelConfig& config, const ShardLayout& layout,
                                          ModelWeights& weights) const {
  const int64_t hidden = config.hidden_size;
  WeightPlan plan;
  Planner p(plan);
  weights.layers.resize(config.num_hidden_layers);  // before any pointer into them is taken
  const uint64_t embedding_index = PlanEmbedding(p, config, weights);
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    LayerWeights& layer = weights.layers[i];
    const LayerNames names(i);
    PlanNorm(p, &layer.input_layernorm, names, "input_layernorm", "attn_norm", hidden);
    PlanAttention(p, config, layout, names, layer);
    PlanNorm(p, &layer.post_attention_layernorm, names, "post_attention_layernorm", "ffn_norm",
             hidden);
    if (config.IsMoeLayer(i)) {
      PlanExperts(config, layout, i, p, layer.experts);
    } else {
      PlanMlp(p, config, layout, names, layer);
    }
  }
  p.Target(&weights.norm);
  p.Add("model.norm.weight", "output_norm.weight", {hidden}, WeightKind::kNorm, 0);
  PlanLmHead(p, config, layout, weights, embedding_index);
  return plan;
}

absl::StatusOr<std::unique_ptr<Model>> LlamaArchitecture::CreateModel(
    const ModelConfig& config, const ShardLayout& layout, ModelWeights weights,
    const ModelOptions& options) const {
  RETURN_IF_ERROR(CheckDecoderShard(config, layout, weights));
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
  RETURN_IF_ERROR(CheckDevice(config, options.device));
  ASSIGN_OR_RETURN(Tensor device_rope, RopeTableOn(rope, options.device));
  return std::unique_ptr<Model>(new LlamaModel(config, layout, std::move(weights), std::move(rope),
                                               std::move(device_rope), options.device));
}

}  // namespace

const ModelArchitecture& LlamaFamily() {
  static const LlamaArchitecture* const kLlama = new LlamaArchitecture();
  return *kLlama;
}

}  // namespace pagoda
