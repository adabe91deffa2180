#include "worker/models/activation_buffer.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/cuda/graph.h"

namespace pagoda {

absl::StatusOr<float*> ActivationBuffer::Reserve(int64_t n) {
  if (device_ == Device::kCpu) {
    if (static_cast<int64_t>(host_.size()) < n) host_.resize(static_cast<size_t>(n));
    return host_.data();
  }
  if (device_tensor_.empty() || device_tensor_.num_elements() < n) {
    // A captured graph may hold the old storage's address: it must not be freed mid-capture.
    if (kernels::cuda::CapturingGraph()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "an activation buffer of ", device_tensor_.num_elements(), " floats would grow to ", n,
          " during a CUDA graph capture (run the same step once before capturing it)"));
    }
    device_tensor_ = Tensor();  // free the old storage before the larger one is allocated
    ASSIGN_OR_RETURN(device_tensor_, Tensor::Zeros(DType::kF32, {n}, device_));
  }
  return device_tensor_.mutable_data_as<float>();
}

float* ActivationBuffer::data() {
  return device_ == Device::kCpu ? host_.data() : device_tensor_.mutable_data_as<float>();
}

}  // namespace pagoda
