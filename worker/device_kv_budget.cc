#include "worker/device_kv_budget.h"

#include <algorithm>
#include <numeric>
#include <vector>

#include "common/status_macros.h"

namespace pagoda {

int64_t DeviceKvBudget(const kernels::cuda::DeviceMemoryInfo& now, double utilization,
                       int64_t replaced_kv_bytes) {
  const int64_t in_use = std::max<int64_t>(0, now.total_bytes - now.free_bytes - replaced_kv_bytes);
  const auto allowed = static_cast<int64_t>(utilization * static_cast<double>(now.total_bytes));
  return std::max<int64_t>(0, allowed - in_use);
}

LargestStep LargestStepFor(int64_t max_num_batched_tokens, int64_t max_num_seqs,
                           int64_t max_positions) {
  const int64_t positions = std::max<int64_t>(1, max_positions);
  const int64_t tokens = max_num_batched_tokens > 0 ? max_num_batched_tokens : positions;
  const int64_t seqs = std::clamp<int64_t>(max_num_seqs > 0 ? max_num_seqs : 1, 1, tokens);
  return {.num_seqs = seqs,
          .tokens_per_seq = std::min(positions, std::max<int64_t>(1, tokens / seqs))};
}

int64_t ProfileBlocks(const LargestStep& step, int64_t block_size) {
  return step.num_seqs * ((step.tokens_per_seq + block_size - 1) / block_size);
}

absl::Status RunLargestStep(ModelRunner& runner, const LargestStep& step) {
  const int64_t blocks_per_seq =
      ProfileBlocks({.num_seqs = 1, .tokens_per_seq = step.tokens_per_seq}, runner.block_size());
  const std::vector<int32_t> tokens(step.tokens_per_seq, 0);
  std::vector<int32_t> tables(step.num_seqs * blocks_per_seq);
  std::iota(tables.begin(), tables.end(), 0);
  const size_t more_groups = runner.kv_groups().windows.size() - 1;
  std::vector<SequenceInput> batch;
  batch.reserve(step.num_seqs);
  for (int64_t s = 0; s < step.num_seqs; ++s) {
    const absl::Span<const int32_t> table(tables.data() + s * blocks_per_seq, blocks_per_seq);
    batch.push_back(
        {.token_ids = tokens,
         .num_computed_tokens = 0,
         .block_table = table,
         .more_block_tables = std::vector<absl::Span<const int32_t>>(more_groups, table),
         .sample = true});
  }
  RETURN_IF_ERROR(runner.Execute(batch).status());
  if (runner.device() == Device::kCuda) return kernels::cuda::Synchronize();
  return absl::OkStatus();
}

}  // namespace pagoda
