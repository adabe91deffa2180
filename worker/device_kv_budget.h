// How much of a CUDA device a rank's KV cache may take (--gpu-memory-utilization), sized as vLLM
// sizes it: the rank first loads its weights and runs its largest step over a small cache, so
// that what the device has in use then is known — the weights, the activations' peak, the CUDA
// context and cuBLAS's workspace, and any other process's memory — and the cache gets the rest
// of utilization × total (the small cache it replaces counted back in).
//
//   const LargestStep step = LargestStepFor(4096, 256, runner->max_positions());
//   (runner created with ProfileBlocks(step, block_size) blocks)
//   RETURN_IF_ERROR(RunLargestStep(*runner, step));
//   ASSIGN_OR_RETURN(const kernels::cuda::DeviceMemoryInfo now, kernels::cuda::MemoryInfo());
//   const int64_t budget = DeviceKvBudget(now, 0.9, runner->kv_cache().num_bytes());
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda/device_memory.h"
#include "worker/model_runner.h"

namespace pagoda {

/// utilization × now.total_bytes − (what is in use now, less `replaced_kv_bytes`, the profiling
/// cache about to be freed); 0 when nothing is left.
int64_t DeviceKvBudget(const kernels::cuda::DeviceMemoryInfo& now, double utilization,
                       int64_t replaced_kv_bytes);

/// The engine's largest step as the profile runs it: num_seqs prefills of tokens_per_seq tokens
/// each, every one sampling (so the logits of num_seqs rows are there too).
struct LargestStep {
  int64_t num_seqs = 1;
  int64_t tokens_per_seq = 1;
};

/// The step of `max_num_batched_tokens` new tokens over `max_num_seqs` sequences (each 0:
/// unknown, then max_positions tokens and one sequence), each sequence within max_positions.
LargestStep LargestStepFor(int64_t max_num_batched_tokens, int64_t max_num_seqs,
                           int64_t max_positions);

/// KV blocks the profile step needs: each sequence its own blocks.
int64_t ProfileBlocks(const LargestStep& step, int64_t block_size);

/// Runs `step` on `runner` (whose cache holds ProfileBlocks(step) blocks; token 0 everywhere)
/// and waits for the device, so that the activations' peak is allocated when it returns.
absl::Status RunLargestStep(ModelRunner& runner, const LargestStep& step);

}  // namespace pagoda
