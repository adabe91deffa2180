#include "engine/engine_config.h"

#include <algorithm>
#include <limits>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace pagoda {

absl::Status EngineConfig::Validate(const ExecutorInfo& info) const {
  if (max_num_seqs < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_num_seqs (--max-num-seqs) must be at least 1, got ", max_num_seqs));
  }
  if (max_num_batched_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_num_batched_tokens (--max-num-batched-tokens) must be at least 1, got ",
                     max_num_batched_tokens));
  }
  if (num_scheduler_steps < 1 || num_scheduler_steps > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_scheduler_steps (--num-scheduler-steps) must be in [1, 64], got ",
                     num_scheduler_steps));
  }
  if (max_model_len < 0 || max_model_len > info.max_model_len) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_model_len (--max-model-len) ", max_model_len, " is outside [0, ",
                     info.max_model_len, "] (the model's positions)"));
  }
  if (!enable_chunked_prefill &&
      max_num_batched_tokens < (max_model_len > 0 ? max_model_len : info.max_model_len)) {
    return absl::InvalidArgumentError(
        "without chunked prefill, max_num_batched_tokens must cover max_model_len");
  }
  if (max_num_batched_tokens < max_num_seqs && enable_chunked_prefill) {
    // Every running sequence must be able to decode in one step.
    return absl::InvalidArgumentError(
        absl::StrCat("max_num_batched_tokens (--max-num-batched-tokens: ", max_num_batched_tokens,
                     ") must be at least max_num_seqs (--max-num-seqs: ", max_num_seqs, ")"));
  }
  if (info.num_device_blocks < 1 || info.block_size < 1) {
    return absl::InvalidArgumentError("the executor reports no KV cache blocks");
  }
  // As vLLM does: a cache that cannot hold one whole context would refuse the longest requests
  // the API promises (GET /v1/models reports max_model_len) — say so at startup instead. Under a
  // sliding window a whole context holds only its window's blocks.
  const int64_t context = max_model_len > 0 ? max_model_len : info.max_model_len;
  const int64_t held = PeakSequenceTokens(info, context);
  const int64_t context_blocks = PeakSequenceBlocks(info, context);
  if (info.num_device_blocks < context_blocks && !info.kv_group_windows.empty()) {
    // Groups share the blocks: the longest context that fits, by bisection (the peak grows with
    // the length).
    int64_t fits = 0;
    for (int64_t lo = 1, hi = context - 1; lo <= hi;) {
      const int64_t mid = lo + (hi - lo) / 2;
      if (PeakSequenceBlocks(info, mid) <= info.num_device_blocks) {
        fits = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "the KV cache holds ", info.num_device_blocks, " blocks of ", info.block_size,
        " tokens, which a sequence's ", info.kv_group_windows.size(),
        " KV cache groups share; one of max_model_len ", context, " needs up to ", context_blocks,
        ": give it more memory (--kv-cache-memory-gib or --num-gpu-blocks-override) or lower "
        "--max-model-len to at most ",
        fits));
  }
  if (info.num_device_blocks < context_blocks) {
    const int64_t cache_tokens = info.num_device_blocks * info.block_size;
    return absl::InvalidArgumentError(absl::StrCat(
        "the KV cache holds ", cache_tokens, " tokens (", info.num_device_blocks, " blocks of ",
        info.block_size, "), fewer than max_model_len ", context,
        held < context ? absl::StrCat(" (of which a sequence holds at most ", held,
                                      " under the model's sliding window)")
                       : "",
        ": give it more memory (--kv-cache-memory-gib or --num-gpu-blocks-override) or lower "
        "--max-model-len to at most ",
        cache_tokens));
  }
  if (preemption_mode == PreemptionMode::kSwap && info.num_host_blocks < 1) {
    return absl::InvalidArgumentError(
        "preemption mode 'swap' needs host swap space (--swap-space; the executor has no host "
        "blocks)");
  }
  RETURN_IF_ERROR(speculative.Validate());
  if (speculative.enabled() &&
      (num_scheduler_steps != 1 || scheduler != SchedulerKind::kContinuous)) {
    return absl::InvalidArgumentError(
        "--speculative-config needs the continuous scheduler with --num-scheduler-steps 1 (a "
        "speculating sequence plans each step from the tokens of the one before)");
  }
  if (max_waiting_requests < 0) {
    return absl::InvalidArgumentError("max_waiting_requests must be non-negative");
  }
  return absl::OkStatus();
}

absl::StatusOr<PreemptionMode> ParsePreemptionMode(const std::string& text) {
  if (text == "recompute") return PreemptionMode::kRecompute;
  if (text == "swap") return PreemptionMode::kSwap;
  return absl::InvalidArgumentError(
      absl::StrCat("preemption mode must be recompute or swap, got '", text, "'"));
}

absl::StatusOr<SchedulingPolicy> ParseSchedulingPolicy(const std::string& text) {
  if (text == "fcfs") return SchedulingPolicy::kFcfs;
  if (text == "priority") return SchedulingPolicy::kPriority;
  return absl::InvalidArgumentError(
      absl::StrCat("scheduling policy must be fcfs or priority, got '", text, "'"));
}

absl::StatusOr<SchedulerKind> ParseSchedulerKind(const std::string& text) {
  if (text == "continuous") return SchedulerKind::kContinuous;
  if (text == "static") return SchedulerKind::kStatic;
  return absl::InvalidArgumentError(
      absl::StrCat("scheduler must be continuous or static, got '", text, "'"));
}

int64_t EngineConfig::PeakSequenceTokens(const ExecutorInfo& info, int64_t length) const {
  return PeakTokensUnderWindow(info.sliding_window, info.block_size, length);
}

int64_t EngineConfig::PeakTokensUnderWindow(int64_t window, int64_t block_size,
                                            int64_t length) const {
  if (window <= 0 || scheduler == SchedulerKind::kStatic) return length;
  const int64_t step =
      max_num_batched_tokens + num_scheduler_steps + speculative.num_speculative_tokens;
  return std::min(length, window + step + block_size);
}

int64_t EngineConfig::PeakSequenceBlocks(const ExecutorInfo& info, int64_t length) const {
  const int64_t bs = info.block_size;
  // ceil(tokens / bs) and a saturating sum: a length may be "unbounded" (INT64_MAX).
  const auto blocks_for = [bs](int64_t tokens) { return tokens / bs + (tokens % bs != 0); };
  if (info.kv_group_windows.empty()) return blocks_for(PeakSequenceTokens(info, length));
  int64_t blocks = 0;
  for (int64_t window : info.kv_group_windows) {
    const int64_t group = blocks_for(PeakTokensUnderWindow(window, bs, length));
    blocks = blocks > std::numeric_limits<int64_t>::max() - group
                 ? std::numeric_limits<int64_t>::max()
                 : blocks + group;
  }
  return blocks;
}

}  // namespace pagoda
