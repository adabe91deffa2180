// Executor: what the engine core drives. One Executor stands for one replica (all its
// tensor-parallel ranks); the InProcessExecutor (worker/) runs the model in this process, the
// RemoteExecutor (router/) fans plans out to worker processes over gRPC, and benchmarks use a
// simulated one.
//
//   std::future<absl::StatusOr<StepResult>> pending = executor->Submit(std::move(plan));
//   ... plan the next step, process the previous step's outputs ...
//   ASSIGN_OR_RETURN(StepResult result, pending.get());
#pragma once

#include <cstdint>
#include <future>
#include <vector>

#include "absl/status/statusor.h"
#include "common/step/step.h"

namespace pagoda {

/// The replica's capacity and model facts the scheduler needs.
struct ExecutorInfo {
  int64_t num_device_blocks = 0;
  int64_t num_host_blocks = 0;  // swap space; 0 disables swapping
  int64_t block_size = 0;       // tokens per block
  int64_t max_model_len = 0;    // positions the model supports
  int64_t vocab_size = 0;
  /// > 0: every layer of the model attends to at most this many last positions (and no draft
  /// model reads behind them), so the engine frees the blocks wholly before a sequence's window
  /// (kFreedBlockId).
  int64_t sliding_window = 0;
  /// KV cache groups (common/kv_cache_groups.h): each group's window, 0 for full attention; the
  /// engine keeps a block table per group and frees a sliding group's blocks behind its window.
  /// Empty: one group with sliding_window (then 0 with groups).
  std::vector<int64_t> kv_group_windows;
};

class Executor {
 public:
  virtual ~Executor() = default;

  virtual const ExecutorInfo& info() const = 0;

  /// Starts a step. Steps run in submission order; a plan may be submitted before the previous
  /// step's result was read (its sequences' sampled tokens are already on the workers). An error
  /// result means the replica's state is unknown: the engine must fail or re-initialize it.
  virtual std::future<absl::StatusOr<StepResult>> Submit(StepPlan plan) = 0;
};

}  // namespace pagoda
