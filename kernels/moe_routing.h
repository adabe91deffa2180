// Mixture-of-experts routing and the row movement around the experts' GEMMs, so that each expert
// runs once over all the tokens routed to it (never a loop over tokens):
//   1. MoeRoute: per token, softmax over the router logits, the top k experts, their weights
//      (renormalised to sum 1 or not); then the num_tokens * top_k (token, expert) pairs grouped
//      by expert (a counting sort: expert e's rows are [expert_offsets[e], expert_offsets[e+1]),
//      in token order);
//   2. MoeGather: the grouped input rows (row r is token sorted_tokens[r]);
//   3. the caller runs expert e's MLP on its contiguous block of grouped rows;
//   4. MoeCombine: out[t] = sum over j of topk_weights[t, j] * expert_out[token_rows[t, j]].
// Under expert parallelism a rank holds a contiguous range of experts, so their rows are one
// contiguous block of the grouped order: it gathers and runs only that block, and MoeCombine
// (row_begin) adds only its rows.
//
//   RETURN_IF_ERROR(MoeRoute({.router_logits = logits, .num_tokens = n, .num_experts = 6,
//                             .top_k = 2, .renormalize = true, ...outputs}));
//   RETURN_IF_ERROR(MoeGather({.input = x, .rows = sorted_tokens, .num_rows = n * 2, ...}));
#pragma once

#include <cstdint>

#include "absl/status/status.h"

namespace pagoda::kernels {

struct MoeRouteParams {
  const float* router_logits = nullptr;  // [num_tokens, num_experts]
  int64_t num_tokens = 0;
  int64_t num_experts = 0;
  int64_t top_k = 0;  // in [1, num_experts]
  /// true: the top k softmax probabilities divided by their sum (Mixtral, Qwen3-MoE with
  /// norm_topk_prob); false: the probabilities as they are.
  bool renormalize = false;

  // Outputs.
  float* topk_weights = nullptr;      // [num_tokens, top_k], in descending order of probability
  int32_t* topk_experts = nullptr;    // [num_tokens, top_k]: the expert of each weight
  int64_t* expert_offsets = nullptr;  // [num_experts + 1]: grouped rows of expert e
  int32_t* sorted_tokens = nullptr;   // [num_tokens * top_k]: the token of each grouped row
  int32_t* token_rows = nullptr;      // [num_tokens, top_k]: the grouped row of each choice

  absl::Status Validate() const;
};

/// Routes every token to its top_k experts and groups the choices by expert.
absl::Status MoeRoute(const MoeRouteParams& params);

struct MoeGatherParams {
  const float* input = nullptr;   // [num_tokens, width]
  const int32_t* rows = nullptr;  // [num_rows]: the input row of each output row
  float* output = nullptr;        // [num_rows, width]
  int64_t num_tokens = 0;
  int64_t num_rows = 0;
  int64_t width = 0;

  absl::Status Validate() const;  // also checks every index is in [0, num_tokens)
};

/// output[r] = input[rows[r]].
absl::Status MoeGather(const MoeGatherParams& params);

struct MoeCombineParams {
  const float* expert_out = nullptr;    // [num_rows, width]: grouped rows [row_begin, +num_rows)
  const float* topk_weights = nullptr;  // [num_tokens, top_k]
  const int32_t* token_rows = nullptr;  // [num_tokens, top_k]: grouped rows, in [0, n * top_k)
  float* output = nullptr;              // [num_tokens, width]
  int64_t num_tokens = 0;
  int64_t top_k = 0;
  int64_t num_rows = 0;
  int64_t width = 0;
  /// The first grouped row expert_out holds: 0 with every row (num_rows = num_tokens * top_k).
  /// Expert parallelism passes the contiguous block of its own experts' rows; the choices of
  /// rows outside it add nothing (their experts' rank adds them, and the all-reduce sums).
  int64_t row_begin = 0;

  absl::Status Validate() const;  // also checks every row index is in [0, num_tokens * top_k)
};

/// output[t] = sum over j < top_k of topk_weights[t, j] * expert_out[token_rows[t, j]] for the
/// rows expert_out holds (0 when it holds none of t's), summed in order of j (so every
/// tensor-parallel rank adds in the same order).
absl::Status MoeCombine(const MoeCombineParams& params);

}  // namespace pagoda::kernels
