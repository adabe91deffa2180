#include "worker/device_selection.h"

#include "absl/strings/str_cat.h"
#include "kernels/cuda/device_memory.h"

namespace pagoda {

absl::StatusOr<Device> SelectDevice(DeviceChoice choice) {
  const bool built = kernels::cuda::BuiltWithCuda();
  const bool visible = built && kernels::cuda::DeviceCount() > 0;
  switch (choice) {
    case DeviceChoice::kCpu:
      return Device::kCpu;
    case DeviceChoice::kAuto:
      return visible ? Device::kCuda : Device::kCpu;
    case DeviceChoice::kCuda:
      if (!built) {
        return absl::FailedPreconditionError(
            "--device cuda: this build has no CUDA backend (built with PAGODA_CUDA=OFF); use "
            "--device cpu");
      }
      if (!visible) {
        return absl::FailedPreconditionError(
            "--device cuda: no CUDA device is visible to this process (no NVIDIA driver, no "
            "GPU, or CUDA_VISIBLE_DEVICES hides them); use --device cpu");
      }
      return Device::kCuda;
  }
  return absl::InvalidArgumentError("unknown --device choice");
}

absl::StatusOr<std::string> SelectCommunicator(std::string_view asked, Device device,
                                               int32_t tp_size) {
  if (asked != "" && asked != "auto" && asked != "gloo" && asked != "nccl") {
    return absl::InvalidArgumentError(absl::StrCat(
        "communicator must be 'auto', 'gloo' or 'nccl', got '", std::string(asked), "'"));
  }
  const std::string_view natural = device == Device::kCuda ? "nccl" : "gloo";
  if (asked == "gloo" || asked == "nccl") {
    if (asked != natural) {
      return absl::InvalidArgumentError(
          absl::StrCat("communicator '", std::string(asked), "' cannot serve a worker on the ",
                       std::string(DeviceName(device)),
                       ": gloo's collectives work on host memory, nccl's on CUDA device "
                       "memory (use 'auto')"));
    }
  }
  if (tp_size <= 1) return std::string("single");
  return std::string(natural);
}

}  // namespace pagoda
