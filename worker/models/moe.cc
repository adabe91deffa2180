#include "worker/models/moe.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/activation.h"
#include "kernels/moe_routing.h"
#include "worker/models/layers.h"

namespace pagoda {
namespace {

// Grows a buffer to at least n elements; the contents are overwritten by the step.
template <typename T>
T* Grow(std::vector<T>& buffer, int64_t n) {
  if (static_cast<int64_t>(buffer.size()) < n) buffer.resize(static_cast<size_t>(n));
  return buffer.data();
}

// The Hugging Face names of a family's sparse block and its experts' projections.
struct ExpertNames {
  const char* block;
  const char* gate;
  const char* up;
  const char* down;
};

ExpertNames NamesOf(const ModelConfig& config) {
  if (config.architecture == "MixtralForCausalLM") {
    return {"block_sparse_moe", "w1", "w3", "w2"};
  }
  return {"mlp", "gate_proj", "up_proj", "down_proj"};  // Qwen3-MoE
}

}  // namespace

void PlanExperts(const ModelConfig& config, const ShardLayout& layout, int64_t layer, Planner& p,
                 ExpertWeights& weights) {
  const int64_t hidden = config.hidden_size;
  const int64_t experts = config.num_experts;
  const int64_t inter = config.moe_intermediate_size;
  const int64_t begin = layout.expert_begin;
  const int64_t local = layout.expert_width;
  constexpr WeightKind kProj = WeightKind::kProjection;
  const ExpertNames names = NamesOf(config);
  const std::string hf = absl::StrCat("model.layers.", layer, ".", names.block, ".");
  const std::string gg = absl::StrCat("blk.", layer, ".");
  // One expert's matrix of GGUF's stacked [experts, rows, cols] tensor.
  const auto expert_of = [experts](WeightSlot& slot, int64_t e) -> WeightSlot& {
    slot.gguf_expert = e;
    slot.gguf_num_experts = experts;
    return slot;
  };

  weights.gate_up_proj.resize(static_cast<size_t>(experts));  // before pointers into them
  weights.down_proj.resize(static_cast<size_t>(experts));
  // The router is replicated: every rank routes every token the same way.
  p.Target(&weights.router);
  p.Add(hf + "gate.weight", gg + "ffn_gate_inp.weight", {experts, hidden}, kProj, hidden);
  for (int64_t e = 0; e < experts; ++e) {
    const std::string expert = absl::StrCat(hf, "experts.", e, ".");
    // Column-parallel gate/up (this rank's rows), fused as [gate; up].
    p.Target(&weights.gate_up_proj[e]);
    Planner::Rows(expert_of(p.Add(expert + names.gate + ".weight", gg + "ffn_gate_exps.weight",
                                  {inter, hidden}, kProj, hidden),
                            e),
                  begin, local);
    Planner::Rows(expert_of(p.Add(expert + names.up + ".weight", gg + "ffn_up_exps.weight",
                                  {inter, hidden}, kProj, hidden, inter * hidden),
                            e),
                  begin, local);
    // Row-parallel down: this rank's columns.
    p.Target(&weights.down_proj[e]);
    Planner::Cols(expert_of(p.Add(expert + names.down + ".weight", gg + "ffn_down_exps.weight",
                                  {hidden, inter}, kProj, inter),
                            e),
                  begin, local);
  }
}

bool ExpertsMatch(const ModelConfig& config, const ShardLayout& layout,
                  const ExpertWeights& weights) {
  const int64_t hidden = config.hidden_size;
  const int64_t local = layout.expert_width;
  if (weights.router.out_features() != config.num_experts ||
      weights.router.in_features() != hidden ||
      static_cast<int64_t>(weights.gate_up_proj.size()) != config.num_experts ||
      static_cast<int64_t>(weights.down_proj.size()) != config.num_experts) {
    return false;
  }
  for (int64_t e = 0; e < config.num_experts; ++e) {
    const LinearWeight& gate_up = weights.gate_up_proj[e];
    const LinearWeight& down = weights.down_proj[e];
    if (gate_up.out_features() != 2 * local || gate_up.in_features() != hidden ||
        down.out_features() != hidden || down.in_features() != local) {
      return false;
    }
  }
  return true;
}

MoeFeedForward::MoeFeedForward(const ModelConfig& config, const ShardLayout& layout)
    : hidden_size_(config.hidden_size),
      num_experts_(config.num_experts),
      top_k_(config.num_experts_per_tok),
      inter_(layout.expert_width),
      renormalize_(config.norm_topk_prob) {}

absl::Status MoeFeedForward::Run(const ExpertWeights& w, const float* hidden, int64_t num_tokens,
                                 float* out) {
  const int64_t h = hidden_size_;
  const int64_t rows = num_tokens * top_k_;
  float* logits = Grow(logits_, num_tokens * num_experts_);
  RETURN_IF_ERROR(Linear(hidden, num_tokens, w.router, Tensor(), logits));
  int64_t* offsets = Grow(offsets_, num_experts_ + 1);
  RETURN_IF_ERROR(kernels::MoeRoute({.router_logits = logits,
                                     .num_tokens = num_tokens,
                                     .num_experts = num_experts_,
                                     .top_k = top_k_,
                                     .renormalize = renormalize_,
                                     .topk_weights = Grow(topk_weights_, rows),
                                     .topk_experts = Grow(topk_experts_, rows),
                                     .expert_offsets = offsets,
                                     .sorted_tokens = Grow(sorted_tokens_, rows),
                                     .token_rows = Grow(token_rows_, rows)}));
  float* gathered = Grow(gathered_, rows * h);
  RETURN_IF_ERROR(kernels::MoeGather({.input = hidden,
                                      .rows = sorted_tokens_.data(),
                                      .output = gathered,
                                      .num_tokens = num_tokens,
                                      .num_rows = rows,
                                      .width = h}));
  // Each expert once over its contiguous block of grouped rows.
  float* gate_up = Grow(gate_up_, rows * 2 * inter_);
  for (int64_t e = 0; e < num_experts_; ++e) {
    const int64_t first = offsets[e];
    const int64_t n = offsets[e + 1] - first;
    if (n == 0) continue;
    RETURN_IF_ERROR(
        Linear(gathered + first * h, n, w.gate_up_proj[e], Tensor(), gate_up + first * 2 * inter_));
  }
  float* act = Grow(act_, rows * inter_);
  RETURN_IF_ERROR(
      kernels::SiluAndMul({.input = gate_up, .output = act, .num_tokens = rows, .d = inter_}));
  float* expert_out = Grow(expert_out_, rows * h);
  for (int64_t e = 0; e < num_experts_; ++e) {
    const int64_t first = offsets[e];
    const int64_t n = offsets[e + 1] - first;
    if (n == 0) continue;
    RETURN_IF_ERROR(
        Linear(act + first * inter_, n, w.down_proj[e], Tensor(), expert_out + first * h));
  }
  return kernels::MoeCombine({.expert_out = expert_out,
                              .topk_weights = topk_weights_.data(),
                              .token_rows = token_rows_.data(),
                              .output = out,
                              .num_tokens = num_tokens,
                              .top_k = top_k_,
                              .num_rows = rows,
                              .width = h});
}

}  // namespace pagoda
