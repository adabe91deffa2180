// CUDA runtime errors as absl::Status, for the .cu files of kernels/cuda/ only (it includes the
// CUDA runtime header).
//
//   RETURN_IF_ERROR(internal::CudaStatus(cudaMemcpy(...), "copy 4096 bytes"));
//   MyKernel<<<grid, block>>>(...);
//   RETURN_IF_ERROR(internal::LaunchStatus("rms_norm"));
#pragma once

#include <cuda_runtime.h>

#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace pagoda::kernels::cuda::internal {

/// OK for cudaSuccess; ResourceExhausted for out of memory; FailedPrecondition when there is no
/// usable device or driver; Internal otherwise. `what` says what was being done.
inline absl::Status CudaStatus(cudaError_t error, std::string_view what) {
  if (error == cudaSuccess) return absl::OkStatus();
  const std::string message =
      absl::StrCat("cuda: ", std::string(what), ": ", cudaGetErrorName(error), " (",
                   cudaGetErrorString(error), ")");
  switch (error) {
    case cudaErrorMemoryAllocation:
      return absl::ResourceExhaustedError(message);
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorInvalidDevice:
    case cudaErrorDevicesUnavailable:
    case cudaErrorNotSupported:
    case cudaErrorInitializationError:
    case cudaErrorStubLibrary:
    case cudaErrorSystemDriverMismatch:
    case cudaErrorNoKernelImageForDevice:  // built for another architecture
      return absl::FailedPreconditionError(message);
    default:
      return absl::InternalError(message);
  }
}

/// The status of the kernel launch just made (bad configuration, no device): cudaGetLastError.
/// Errors raised while the kernel runs surface at the next synchronizing call.
inline absl::Status LaunchStatus(std::string_view kernel) {
  return CudaStatus(cudaGetLastError(), absl::StrCat("launch ", std::string(kernel)));
}

/// Blocks for a grid of `n` items with `threads` each (n > 0), for 1-D launches.
inline unsigned int BlocksFor(int64_t n, int threads) {
  return static_cast<unsigned int>((n + threads - 1) / threads);
}

}  // namespace pagoda::kernels::cuda::internal
