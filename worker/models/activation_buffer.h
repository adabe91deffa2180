// ActivationBuffer: the storage of one activation of a model's forward pass, on the model's
// device — a host vector on the CPU, a device Tensor on CUDA — grown to the largest step it has
// served and reused across steps (the contents are the step's to overwrite). Pointers it hands
// out are for kernels with the same `.device`; on CUDA they are never read on the host.
//
//   ActivationBuffer qkv(Device::kCuda);
//   ASSIGN_OR_RETURN(float* q, qkv.Reserve(num_tokens * width));
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/device.h"
#include "kernels/tensor.h"

namespace pagoda {

class ActivationBuffer {
 public:
  explicit ActivationBuffer(Device device = Device::kCpu) : device_(device) {}

  Device device() const { return device_; }
  /// At least n floats, keeping the buffer when it is large enough. Growing a device buffer
  /// frees the old one first (cudaFree waits for the work queued on it); an allocation the
  /// device cannot hold is ResourceExhausted naming the bytes; growing during a CUDA graph
  /// capture (kernels/cuda/graph.h) is FailedPrecondition.
  absl::StatusOr<float*> Reserve(int64_t n);
  /// The buffer as last reserved (nullptr before the first Reserve).
  float* data();

 private:
  Device device_;
  std::vector<float> host_;  // Device::kCpu
  Tensor device_tensor_;     // Device::kCuda: fp32 [capacity]
};

}  // namespace pagoda
