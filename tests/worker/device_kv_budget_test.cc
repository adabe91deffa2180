// DeviceKvBudget: the share of the device left to the KV cache after the weights and the largest
// step, with the profiling cache counted back in.
#include "worker/device_kv_budget.h"

#include "gtest/gtest.h"

namespace pagoda {
namespace {

constexpr int64_t kGiB = int64_t{1} << 30;

TEST(DeviceKvBudget, TheRestOfTheAllowedShare) {
  // 141 GiB device, 20 GiB in use (16 of weights and activations, 4 of another process).
  const kernels::cuda::DeviceMemoryInfo now{.free_bytes = 121 * kGiB, .total_bytes = 141 * kGiB};
  EXPECT_EQ(DeviceKvBudget(now, 1.0, 0), 121 * kGiB);
  EXPECT_EQ(DeviceKvBudget(now, 0.5, 0), static_cast<int64_t>(70.5 * kGiB) - 20 * kGiB);
  // The profiling cache (1 GiB of the 20 in use) is freed before the real one is allocated.
  EXPECT_EQ(DeviceKvBudget(now, 1.0, kGiB), 122 * kGiB);
}

TEST(DeviceKvBudget, NothingWhenTheShareIsAlreadyUsed) {
  const kernels::cuda::DeviceMemoryInfo now{.free_bytes = 10 * kGiB, .total_bytes = 80 * kGiB};
  EXPECT_EQ(DeviceKvBudget(now, 0.5, 0), 0);    // 70 in use, 40 allowed
  EXPECT_EQ(DeviceKvBudget(now, 0.875, 0), 0);  // exactly used up
  EXPECT_EQ(DeviceKvBudget(now, 0.9, 0), static_cast<int64_t>(0.9 * 80 * kGiB) - 70 * kGiB);
  // A replaced cache larger than what is in use (a driver that reports oddly) never counts as
  // negative use.
  EXPECT_EQ(DeviceKvBudget(now, 0.5, 100 * kGiB), 40 * kGiB);
}

}  // namespace
}  // namespace pagoda
