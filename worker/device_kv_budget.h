// How much of a CUDA device a rank's KV cache may take (--gpu-memory-utilization), sized as vLLM
// sizes it: the rank first loads its weights and runs its largest step over a small cache, so
// that what the device has in use then is known — the weights, the activations' peak, the CUDA
// context and cuBLAS's workspace, and any other process's memory — and the cache gets the rest
// of utilization × total (the small cache it replaces counted back in).
//
//   ASSIGN_OR_RETURN(const kernels::cuda::DeviceMemoryInfo now, kernels::cuda::MemoryInfo());
//   const int64_t budget = DeviceKvBudget(now, 0.9, runner->kv_cache().num_bytes());
#pragma once

#include <cstdint>

#include "kernels/cuda/device_memory.h"

namespace pagoda {

/// utilization × now.total_bytes − (what is in use now, less `replaced_kv_bytes`, the profiling
/// cache about to be freed); 0 when nothing is left.
int64_t DeviceKvBudget(const kernels::cuda::DeviceMemoryInfo& now, double utilization,
                       int64_t replaced_kv_bytes);

}  // namespace pagoda
