// The CUDA twin of kernels/paged_attention.h, called by its dispatch point with validated params
// whose device is Device::kCuda (every data pointer on the device). Queues the work on the default
// stream and returns the launch's status (cudaGetLastError); errors raised while the kernels run
// surface at the next synchronizing call. How a launch is cut into blocks (split-context decode
// or tiled prefill): kernels/cuda/paged_attention_plan.h.
//
// CUDA graphs: the call neither synchronizes nor allocates once its workspace is grown. The
// decode path's partials live in a per-thread device buffer of at least
// PlanPagedAttention(params).workspace_bytes (num_tokens x num_heads x ceil(max_blocks_per_seq x
// block_size / 512) x (head_dim + 2) floats): before capturing, run the largest batch to be
// captured (its num_tokens and the fixed max_blocks_per_seq) eagerly once on the capturing
// thread, so that no capture grows it (cudaMalloc while capturing fails the call with an error).
// A buffer a graph captured is never freed while its thread lives (a larger eager launch later
// allocates a new one beside it). The prefill path (never captured: decode batches take the
// decode path) sets its kernel's shared-memory attribute at each launch.
#pragma once

#include "absl/status/status.h"
#include "kernels/paged_attention.h"

namespace pagoda::kernels::cuda {

absl::Status PagedAttention(const PagedAttentionParams& params);

}  // namespace pagoda::kernels::cuda
