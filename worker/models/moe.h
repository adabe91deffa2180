// The mixture-of-experts MLP of Qwen3-MoE (Qwen3MoeForCausalLM) and Mixtral (MixtralForCausalLM),
// the feed-forward block of their sparse layers (config.IsMoeLayer) inside the llama forward
// (worker/models/llama.h, whose attention they share):
//   p = softmax(router(x)); the top k experts of each token with weights p (renormalised to sum 1
//   when config.norm_topk_prob, always for Mixtral);
//   out = sum over the chosen e of weight_e * down_e(silu(gate_e(x)) * up_e(x)).
// Grouped, not per token: all tokens are routed at once (kernels/moe_routing.h), their rows
// grouped by expert, and each expert's GEMMs run once over its block of rows; an expert no token
// chose costs nothing. Under tensor parallelism every rank holds the whole router and a slice of
// every expert (gate/up rows, down columns of its moe_intermediate_size / T), so its output is a
// partial sum that the caller all-reduces like a dense down_proj's. With expert parallelism
// (ShardLayout::num_local_experts < num_experts) a rank holds whole experts, a contiguous range:
// it still routes every token with the whole router (the same choices on every rank), then runs
// only its experts over their rows (one contiguous block of the grouped rows) and adds only their
// weighted outputs; the same all-reduce sums the ranks' parts.
//
// Checkpoint names (Hugging Face Qwen3-MoE | Mixtral / GGUF, experts stacked in one 3-D tensor):
//   model.layers.N.mlp.gate.weight | block_sparse_moe.gate.weight / blk.N.ffn_gate_inp.weight
//   mlp.experts.E.gate_proj | block_sparse_moe.experts.E.w1 / blk.N.ffn_gate_exps.weight [E, I, H]
//   mlp.experts.E.up_proj   | block_sparse_moe.experts.E.w3 / blk.N.ffn_up_exps.weight   [E, I, H]
//   mlp.experts.E.down_proj | block_sparse_moe.experts.E.w2 / blk.N.ffn_down_exps.weight [E, H, I]
//
//   MoeFeedForward moe(config, layout);
//   RETURN_IF_ERROR(moe.Run(layer_weights.experts, normed, num_tokens, partial_out));
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "common/model_config.h"
#include "worker/model_weights.h"
#include "worker/models/weight_planner.h"
#include "worker/tensor_parallel.h"

namespace pagoda {

/// Adds the slots of sparse layer `layer`'s router and experts, this rank's slices or whole
/// experts, stacking into `weights` (sized here to the layout's num_local_experts).
void PlanExperts(const ModelConfig& config, const ShardLayout& layout, int64_t layer, Planner& p,
                 ExpertWeights& weights);

/// Whether `weights` has the shapes of the shard of `layout` (CreateModel's check).
bool ExpertsMatch(const ModelConfig& config, const ShardLayout& layout,
                  const ExpertWeights& weights);

/// Runs the experts of a sparse layer; holds the step's scratch buffers (capacity reused).
class MoeFeedForward {
 public:
  MoeFeedForward(const ModelConfig& config, const ShardLayout& layout);

  /// out [num_tokens, hidden] <- this rank's part of the weighted expert outputs for
  /// hidden [num_tokens, hidden] (the post-attention-normed activations).
  absl::Status Run(const ExpertWeights& weights, const float* hidden, int64_t num_tokens,
                   float* out);

  /// The grouped rows the last Run gave this rank's experts (num_tokens * top_k unless expert
  /// parallel).
  int64_t last_local_rows() const { return last_local_rows_; }

 private:
  int64_t hidden_size_;
  int64_t num_experts_;
  int64_t num_local_experts_;  // this rank's experts: [expert_first_, + num_local_experts_)
  int64_t expert_first_;
  int64_t top_k_;
  int64_t inter_;  // local expert width
  bool renormalize_;
  int64_t last_local_rows_ = 0;

  std::vector<float> logits_;           // [num_tokens, num_experts]
  std::vector<float> topk_weights_;     // [num_tokens, top_k]
  std::vector<int32_t> topk_experts_;   // [num_tokens, top_k]
  std::vector<int64_t> offsets_;        // [num_experts + 1]
  std::vector<int32_t> sorted_tokens_;  // [rows]  (rows = num_tokens * top_k)
  std::vector<int32_t> token_rows_;     // [num_tokens, top_k]
  std::vector<float> gathered_;         // [local rows, hidden] (this rank's experts' rows)
  std::vector<float> gate_up_;          // [local rows, 2 * inter]
  std::vector<float> act_;              // [local rows, inter]
  std::vector<float> expert_out_;       // [local rows, hidden]
};

}  // namespace pagoda
