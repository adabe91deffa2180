// The CUDA twin of kernels/block_copy.h, called by its dispatch point with validated params whose
// device is Device::kCuda: the src/dst pointer arrays and block_pairs are host arrays, the
// blocks they point to device (or, for a swap, host) memory. Queues the copies on the default
// stream and returns the first error cudaMemcpyAsync reports.
#pragma once

#include "absl/status/status.h"
#include "kernels/block_copy.h"

namespace pagoda::kernels::cuda {

absl::Status CopyBlocks(const BlockCopyParams& params);

}  // namespace pagoda::kernels::cuda
