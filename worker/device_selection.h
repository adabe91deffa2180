// Where a worker runs its model, and how its ranks meet: --device (common/model_args.h) resolved
// against this build and machine, and the communicator backend that goes with the device.
//
//   ASSIGN_OR_RETURN(const Device device, SelectDevice(memory.device));   // auto -> cuda or cpu
//   ASSIGN_OR_RETURN(const std::string backend, SelectCommunicator(init.communicator, device, 2));
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/model_args.h"
#include "kernels/device.h"

namespace pagoda {

/// kCpu: the CPU. kCuda: a CUDA device, or FailedPrecondition naming why there is none (a build
/// without the CUDA backend; no visible device). kAuto: a CUDA device when the build has the
/// backend and one is visible, else the CPU.
absl::StatusOr<Device> SelectDevice(DeviceChoice choice);

/// The communicator backend for `asked` ("", "auto", "gloo", "nccl") on `device`: "single" at
/// one rank, else auto picks "gloo" on the CPU and "nccl" on CUDA. Gloo's collectives work on
/// host memory and NCCL's on device memory, so the other pairings are InvalidArgument naming
/// both; anything else is InvalidArgument naming the choices.
absl::StatusOr<std::string> SelectCommunicator(std::string_view asked, Device device,
                                               int32_t tp_size);

}  // namespace pagoda
