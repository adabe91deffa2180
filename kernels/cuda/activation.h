// The CUDA twin of kernels/activation.h, called by its dispatch point with validated params whose
// device is Device::kCuda (every data pointer on the device). Queues the work on the default
// stream and returns the launch's status (cudaGetLastError); errors raised while the kernel runs
// surface at the next synchronizing call.
#pragma once

#include "absl/status/status.h"
#include "kernels/activation.h"

namespace pagoda::kernels::cuda {

absl::Status SiluAndMul(const SiluAndMulParams& params);
absl::Status GeluTanhAndMul(const GeluTanhAndMulParams& params);
absl::Status SoftCap(const SoftCapParams& params);

}  // namespace pagoda::kernels::cuda
