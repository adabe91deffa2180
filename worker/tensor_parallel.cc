#include "worker/tensor_parallel.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace pagoda {

absl::Status ValidateTensorParallel(const ModelConfig& config, const TensorParallelShard& shard) {
  if (shard.size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor parallel size must be at least 1, got ", shard.size));
  }
  if (shard.rank < 0 || shard.rank >= shard.size) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor parallel rank ", shard.rank, " is outside [0, ", shard.size, ")"));
  }
  return CheckTensorParallelSize(config, shard.size, shard.expert_parallel);
}

absl::StatusOr<ShardLayout> ComputeShardLayout(const ModelConfig& config,
                                               const TensorParallelShard& shard) {
  RETURN_IF_ERROR(ValidateTensorParallel(config, shard));
  const int64_t rank = shard.rank;
  const int64_t size = shard.size;
  ShardLayout layout;
  layout.shard = shard;
  layout.head_dim = config.head_dim;
  layout.num_heads = config.num_attention_heads / size;
  layout.head_begin = rank * layout.num_heads;
  if (config.num_key_value_heads >= size) {
    layout.num_kv_heads = config.num_key_value_heads / size;
    layout.kv_head_begin = rank * layout.num_kv_heads;
  } else {
    // size / kv_heads consecutive ranks share a KV head; their q heads all belong to its group
    // because the group (H / kv_heads heads) is a multiple of the heads per rank (H / size).
    layout.num_kv_heads = 1;
    layout.kv_head_begin = rank / (size / config.num_key_value_heads);
  }
  layout.intermediate_size = config.intermediate_size / size;
  layout.intermediate_begin = rank * layout.intermediate_size;
  if (shard.expert_parallel && config.num_experts > 0) {
    // Whole experts: expert e lives on rank e * size / num_experts.
    layout.expert_width = config.moe_intermediate_size;
    layout.expert_begin = 0;
    layout.num_local_experts = config.num_experts / size;
    layout.expert_first = rank * layout.num_local_experts;
  } else {
    layout.expert_width = config.moe_intermediate_size / size;
    layout.expert_begin = rank * layout.expert_width;
    layout.num_local_experts = config.num_experts;
    layout.expert_first = 0;
  }
  layout.vocab_rows = (config.vocab_size + size - 1) / size;
  layout.vocab_begin = rank * layout.vocab_rows;
  layout.vocab_valid_rows =
      std::clamp<int64_t>(config.vocab_size - layout.vocab_begin, 0, layout.vocab_rows);
  layout.holds_o_bias = rank == 0;
  return layout;
}

}  // namespace pagoda
