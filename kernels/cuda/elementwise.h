// The CUDA twin of kernels/elementwise.h, called by its dispatch point with validated params whose
// device is Device::kCuda (every data pointer on the device). Queues the work on the default
// stream and returns the launch's status (cudaGetLastError); errors raised while the kernel runs
// surface at the next synchronizing call.
#pragma once

#include "absl/status/status.h"
#include "kernels/elementwise.h"

namespace pagoda::kernels::cuda {

absl::Status BroadcastRows(const BroadcastRowsParams& params);
absl::Status Scale(const ScaleParams& params);
absl::Status GatherRows(const GatherRowsParams& params);

}  // namespace pagoda::kernels::cuda
