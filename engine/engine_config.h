// EngineConfig: the validated settings of one engine (Scheduler + KVCacheManager + EngineLoop),
// built from the engine flags (engine/engine_args.h) and handed to constructors. Its errors name
// the field and the flag that sets it.
//
//   EngineConfig config{.max_num_seqs = 128, .enable_prefix_caching = true};
//   RETURN_IF_ERROR(config.Validate(executor->info()));
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "common/step/executor.h"
#include "engine/speculative_config.h"

namespace pagoda {

enum class PreemptionMode { kRecompute, kSwap };
enum class SchedulingPolicy { kFcfs, kPriority };
enum class SchedulerKind { kContinuous, kStatic };

struct EngineConfig {
  int64_t max_num_seqs = 256;             // running sequences per step
  int64_t max_num_batched_tokens = 4096;  // new tokens per step (prefill chunks + decodes)
  int64_t max_model_len = 0;              // 0: the executor's max_model_len
  int32_t num_scheduler_steps = 1;        // decode steps per plan (multi-step)
  bool enable_prefix_caching = false;
  bool enable_chunked_prefill = true;
  bool async_output = true;  // process step n's outputs while step n+1 runs
  PreemptionMode preemption_mode = PreemptionMode::kRecompute;
  SchedulingPolicy policy = SchedulingPolicy::kFcfs;
  SchedulerKind scheduler = SchedulerKind::kContinuous;
  int64_t max_waiting_requests = 0;  // 0: unbounded; beyond it new requests are refused
  SpeculativeConfig speculative;     // speculative decoding (--speculative-config); off

  /// Checks ranges and agreement with the executor (block size, model length, swap space).
  absl::Status Validate(const ExecutorInfo& info) const;
  /// The most KV positions a sequence of `length` tokens holds at once: all of them, or, when the
  /// model slides a window over every layer (info.sliding_window) and sequences are paged, the
  /// window plus one step's new positions and a block of alignment.
  int64_t PeakSequenceTokens(const ExecutorInfo& info, int64_t length) const;
  /// The most KV blocks a sequence of `length` tokens holds at once, over every KV cache group
  /// (info.kv_group_windows): a block per group for each block of tokens, a sliding group's
  /// capped as PeakSequenceTokens caps a uniform window's.
  int64_t PeakSequenceBlocks(const ExecutorInfo& info, int64_t length) const;
  /// PeakSequenceTokens for one window (0: none).
  int64_t PeakTokensUnderWindow(int64_t window, int64_t block_size, int64_t length) const;
};

absl::StatusOr<PreemptionMode> ParsePreemptionMode(const std::string& text);
absl::StatusOr<SchedulingPolicy> ParseSchedulingPolicy(const std::string& text);
absl::StatusOr<SchedulerKind> ParseSchedulerKind(const std::string& text);

}  // namespace pagoda
