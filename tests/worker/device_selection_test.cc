// SelectDevice and SelectCommunicator: --device resolved against this build and machine (a
// CPU-only machine in CI; a GPU machine takes the other branch), and the backend each device's
// ranks meet over.
#include "worker/device_selection.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/cuda/device_memory.h"

namespace pagoda {
namespace {

using ::testing::HasSubstr;

TEST(SelectDevice, CpuIsAlwaysTheCpu) {
  EXPECT_EQ(SelectDevice(DeviceChoice::kCpu).value(), Device::kCpu);
}

TEST(SelectDevice, AutoAndCudaFollowWhatThisMachineHas) {
  const bool visible = kernels::cuda::BuiltWithCuda() && kernels::cuda::DeviceCount() > 0;
  EXPECT_EQ(SelectDevice(DeviceChoice::kAuto).value(), visible ? Device::kCuda : Device::kCpu);
  const absl::StatusOr<Device> cuda = SelectDevice(DeviceChoice::kCuda);
  if (visible) {
    EXPECT_EQ(cuda.value(), Device::kCuda);
    return;
  }
  ASSERT_FALSE(cuda.ok());
  EXPECT_EQ(cuda.status().code(), absl::StatusCode::kFailedPrecondition);
  const std::string message(cuda.status().message());
  EXPECT_THAT(message, HasSubstr("--device cuda: "));
  EXPECT_THAT(message, HasSubstr(kernels::cuda::BuiltWithCuda() ? "no CUDA device is visible"
                                                                : "no CUDA backend"));
  EXPECT_THAT(message, HasSubstr("use --device cpu"));
}

TEST(SelectCommunicator, EachDeviceMeetsOverItsOwnBackend) {
  EXPECT_EQ(SelectCommunicator("", Device::kCpu, 1).value(), "single");
  EXPECT_EQ(SelectCommunicator("auto", Device::kCuda, 1).value(), "single");
  EXPECT_EQ(SelectCommunicator("", Device::kCpu, 2).value(), "gloo");
  EXPECT_EQ(SelectCommunicator("auto", Device::kCpu, 4).value(), "gloo");
  EXPECT_EQ(SelectCommunicator("gloo", Device::kCpu, 2).value(), "gloo");
  EXPECT_EQ(SelectCommunicator("", Device::kCuda, 2).value(), "nccl");
  EXPECT_EQ(SelectCommunicator("nccl", Device::kCuda, 8).value(), "nccl");
}

TEST(SelectCommunicator, AMismatchOrAnUnknownBackendIsNamed) {
  const absl::Status gloo_on_cuda = SelectCommunicator("gloo", Device::kCuda, 2).status();
  EXPECT_EQ(gloo_on_cuda.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(gloo_on_cuda.message()),
              HasSubstr("communicator 'gloo' cannot serve a worker on the cuda"));
  const absl::Status nccl_on_cpu = SelectCommunicator("nccl", Device::kCpu, 2).status();
  EXPECT_EQ(nccl_on_cpu.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(nccl_on_cpu.message()),
              HasSubstr("communicator 'nccl' cannot serve a worker on the cpu"));
  const absl::Status unknown = SelectCommunicator("mpi", Device::kCpu, 2).status();
  EXPECT_THAT(std::string(unknown.message()),
              HasSubstr("communicator must be 'auto', 'gloo' or 'nccl', got 'mpi'"));
}

}  // namespace
}  // namespace pagoda
