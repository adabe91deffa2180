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
  const int64_t first = layout.expert_first;
  const int64_t num_local = layout.num_local_experts;
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

  weights.gate_up_proj.resize(static_cast<size_t>(num_local));  // before pointers into them
  weights.down_proj.resize(static_cast<size_t>(num_local));
  // The router is replicated: every rank routes every token the same way.
  p.Target(&weights.router);
  p.Add(hf + "gate.weight", gg + "ffn_gate_inp.weight", {experts, hidden}, kProj, hidden);
  for (int64_t e = 0; e < experts; ++e) {
    const std::string expert = absl::StrCat(hf, "experts.", e, ".");
    if (e < first || e >= first + num_local) {  // another rank's whole expert
      p.SkipTarget({expert + names.gate + ".weight", expert + names.up + ".weight"});
      p.SkipTarget({expert + names.down + ".weight"});
      continue;
    }
    const size_t i = static_cast<size_t>(e - first);
    // Column-parallel gate/up (this rank's rows, all of them under expert parallelism), fused as
    // [gate; up].
    p.Target(&weights.gate_up_proj[i]);
    Planner::Rows(expert_of(p.Add(expert + names.gate + ".weight", gg + "ffn_gate_exps.weight",
                                  {inter, hidden}, kProj, hidden),
                            e),
                  begin, local);
    Planner::Rows(expert_of(p.Add(expert + names.up + ".weight", gg + "ffn_up_exps.weight",
                                  {inter, hidden}, kProj, hidden, inter * hidden),
                            e),
                  begin, local);
    // Row-parallel down: this rank's columns (all of them under expert parallelism).
    p.Target(&weights.down_proj[i]);
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
      static_cast<int64_t>(weights.gate_up_proj.size()) != layout.num_local_experts ||
      static_cast<int64_t>(weights.down_proj.size()) != layout.num_local_experts) {
    return false;
  }
  for (int64_t e = 0; e < layout.num_local_experts; ++e) {
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
      num_local_experts_(layout.num_local_experts),
      expert_first_(layout.expert_first),
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
  // This rank's experts' rows: one contiguous block of the grouped rows (all of them without
  // expert parallelism).
  const int64_t row_begin = offsets[expert_first_];
  const int64_t local_rows = offsets[expert_first_ + num_local_experts_] - row_begin;
  last_local_rows_ = local_rows;
  float* gathered = Grow(gathered_, local_rows * h);
  RETURN_IF_ERROR(kernels::MoeGather({.input = hidden,
                                      .rows = sorted_tokens_.data() + row_begin,
                                      .output = gathered,
                                      .num_tokens = num_tokens,
                                      .num_rows = local_rows,
                                      .width = h}));
  // Each local expert once over its contiguous block of grouped rows.
  float* gate_up = Grow(gate_up_, local_rows * 2 * inter_);
  for (int64_t i = 0; i < num_local_experts_; ++i) {
    const int64_t first = offsets[expert_first_ + i] - row_begin;
    const int64_t n = offsets[expert_first_ + i + 1] - row_begin - first;
    if (n == 0) continue;
    RETURN_IF_ERROR(
        Linear(gathered + first * h, n, w.gate_up_proj[i], Tensor(), gate_up + first * 2 * inter_));
  }
  float* act = Grow(act_, local_rows * inter_);
  RETURN_IF_ERROR(kernels::SiluAndMul(
      {.input = gate_up, .output = act, .num_tokens = local_rows, .d = inter_}));
  float* expert_out = Grow(expert_out_, local_rows * h);
  for (int64_t i = 0; i < num_local_experts_; ++i) {
    const int64_t first = offsets[expert_first_ + i] - row_begin;
    const int64_t n = offsets[expert_first_ + i + 1] - row_begin - first;
    if (n == 0) continue;
    RETURN_IF_ERROR(
        Linear(act + first * inter_, n, w.down_proj[i], Tensor(), expert_out + first * h));
  }
  return kernels::MoeCombine({.expert_out = expert_out,
                              .topk_weights = topk_weights_.data(),
                              .token_rows = token_rows_.data(),
                              .output = out,
                              .num_tokens = num_tokens,
                              .top_k = top_k_,
                              .num_rows = local_rows,
                              .width = h,
                              .row_begin = row_begin});
}

}  // namespace pagoda
