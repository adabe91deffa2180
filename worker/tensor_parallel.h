// Megatron-style tensor parallelism: which part of each weight a rank holds. For rank r of T:
//   - q heads are split evenly (rank r holds heads [r * H / T, (r + 1) * H / T));
//   - KV heads are split evenly too, or, when there are fewer KV heads than ranks, each rank
//     holds (a replica of) the one KV head its q heads use;
//   - q/k/v and gate/up projections are column-parallel (rows of the [out, in] weights), o_proj
//     and down_proj row-parallel (columns), followed by an all-reduce; q/k/v biases are sliced
//     like their rows, the o_proj bias is held by rank 0 only so that the sum adds it once;
//   - the LM head is vocab-parallel: the vocabulary is padded to a multiple of T and rank r holds
//     rows [r * V', (r + 1) * V') (rows beyond the vocabulary are zero), then the logits are
//     all-gathered;
//   - embedding and norms are replicated;
//   - mixture-of-experts layers: the router is replicated; each rank holds a slice of every
//     expert (gate/up rows, down columns of moe_intermediate_size / T), or, with expert
//     parallelism (--enable-expert-parallel), whole experts: rank r holds the contiguous experts
//     [r * E / T, (r + 1) * E / T) (E divisible by T). Either way the rank's MoE output is a
//     partial sum that the all-reduce after the MLP completes.
//
//   ASSIGN_OR_RETURN(ShardLayout layout, ComputeShardLayout(config, {.rank = 1, .size = 4}));
//   int64_t local_q_width = layout.q_size();  // columns of this rank's attention output
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/model_config.h"

namespace pagoda {

/// This rank's place in its tensor-parallel group.
struct TensorParallelShard {
  int32_t rank = 0;
  int32_t size = 1;
  /// Mixture-of-experts layers hold whole experts per rank instead of a slice of every expert
  /// (--enable-expert-parallel); no effect on dense models or at size 1.
  bool expert_parallel = false;
};

/// The local sizes and global offsets of one shard of a model.
struct ShardLayout {
  TensorParallelShard shard;
  int64_t head_dim = 0;
  int64_t num_heads = 0;           // local q heads
  int64_t head_begin = 0;          // global index of the first local q head
  int64_t num_kv_heads = 0;        // local KV heads
  int64_t kv_head_begin = 0;       // global index of the first local KV head
  int64_t intermediate_size = 0;   // local MLP width
  int64_t intermediate_begin = 0;  // global index of the first local MLP column
  int64_t expert_width = 0;        // local width of each expert (0 without experts)
  int64_t expert_begin = 0;        // global index of the first local expert column
  int64_t num_local_experts = 0;   // experts this rank holds (all without expert parallelism)
  int64_t expert_first = 0;        // global index of the first local expert
  int64_t vocab_rows = 0;          // V': LM head rows per rank (padding included)
  int64_t vocab_begin = 0;         // global index of the first local LM head row
  int64_t vocab_valid_rows = 0;    // local rows inside the vocabulary (the rest are padding)
  bool holds_o_bias = true;        // rank 0 only

  int64_t q_size() const { return num_heads * head_dim; }
  int64_t kv_size() const { return num_kv_heads * head_dim; }
  int64_t qkv_width() const { return q_size() + 2 * kv_size(); }
};

/// InvalidArgument naming the field when `config` cannot be split over `shard.size` ranks
/// (num_attention_heads or intermediate_size not divisible by it, num_key_value_heads neither
/// divisible by it nor a divisor of it; moe_intermediate_size not divisible by it, or with
/// expert parallelism num_experts) or when the shard itself is malformed.
absl::Status ValidateTensorParallel(const ModelConfig& config, const TensorParallelShard& shard);

/// Validates, then computes the layout of `shard`.
absl::StatusOr<ShardLayout> ComputeShardLayout(const ModelConfig& config,
                                               const TensorParallelShard& shard);

}  // namespace pagoda
