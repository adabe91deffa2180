// Tensor on Device::kCuda: allocation, zero-fill, copies both ways, and out-of-memory errors.
// Needs a CUDA device; skips without one.
#include <cstdint>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/cuda/device_memory.h"
#include "kernels/tensor.h"
#include "tests/gpu/cuda_test_util.h"

namespace pagoda {
namespace {

using kernels::testing::HasCudaDevice;
using ::testing::HasSubstr;

TEST(TensorCuda, ZerosAreZeroOnTheDevice) {
  if (!HasCudaDevice()) GTEST_SKIP() << "no CUDA device";
  absl::StatusOr<Tensor> t = Tensor::Zeros(DType::kF32, {13, 37}, Device::kCuda);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->device(), Device::kCuda);
  EXPECT_EQ(t->num_bytes(), 13 * 37 * 4);
  EXPECT_TRUE(t->owns_storage());
  EXPECT_EQ(TensorToFloats(*t), std::vector<float>(13 * 37, 0.0f));
}

TEST(TensorCuda, CopiesToTheDeviceAndBackUnchanged) {
  if (!HasCudaDevice()) GTEST_SKIP() << "no CUDA device";
  std::mt19937 rng(16);
  const std::vector<float> values = kernels::testing::RandomFloats(5 * 77, rng);
  const Tensor host = Tensor::FromFloats({5, 77}, values);
  absl::StatusOr<Tensor> device = host.CopyTo(Device::kCuda);
  ASSERT_TRUE(device.ok()) << device.status();
  EXPECT_EQ(device->device(), Device::kCuda);
  EXPECT_EQ(device->shape(), host.shape());
  absl::StatusOr<Tensor> device2 = device->CopyTo(Device::kCuda);  // device -> device
  ASSERT_TRUE(device2.ok()) << device2.status();
  absl::StatusOr<Tensor> back = device2->CopyTo(Device::kCpu);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->device(), Device::kCpu);
  EXPECT_EQ(TensorToFloats(*back), values);
}

// kernels::cuda::CopyRows (the sharded logits' layout): columns [4, 9) of a [7, 13] host
// array into columns [2, 7) of a [7, 11] device array, then device -> device and back to the
// host; what lies outside the copied columns keeps its value.
TEST(TensorCuda, CopyRowsMovesStridedRowsEachWay) {
  if (!HasCudaDevice()) GTEST_SKIP() << "no CUDA device";
  constexpr int64_t kRows = 7, kSrcCols = 13, kDstCols = 11, kWidth = 5;
  constexpr int64_t kF = sizeof(float);
  std::mt19937 rng(17);
  const std::vector<float> src = kernels::testing::RandomFloats(kRows * kSrcCols, rng);
  kernels::testing::DeviceArray<float> device(std::vector<float>(kRows * kDstCols, -1.0f));
  ASSERT_TRUE(kernels::cuda::CopyRows(device.get() + 2, kDstCols * kF, src.data() + 4,
                                      kSrcCols * kF, kWidth * kF, kRows)
                  .ok());
  kernels::testing::DeviceArray<float> device2(std::vector<float>(kRows * kWidth, -2.0f));
  ASSERT_TRUE(kernels::cuda::CopyRows(device2.get(), kWidth * kF, device.get() + 2, kDstCols * kF,
                                      kWidth * kF, kRows)
                  .ok());
  const std::vector<float> got = device.Host();
  const std::vector<float> packed = device2.Host();
  for (int64_t r = 0; r < kRows; ++r) {
    for (int64_t c = 0; c < kDstCols; ++c) {
      const bool copied = c >= 2 && c < 2 + kWidth;
      EXPECT_EQ(got[r * kDstCols + c], copied ? src[r * kSrcCols + 4 + c - 2] : -1.0f) << r << c;
    }
    for (int64_t c = 0; c < kWidth; ++c) {
      EXPECT_EQ(packed[r * kWidth + c], src[r * kSrcCols + 4 + c]) << r << c;
    }
  }
  const absl::Status bad = kernels::cuda::CopyRows(device.get(), 4, src.data(), 64, 8, 1);
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument) << bad;
}

TEST(TensorCuda, BF16SurvivesTheRoundTripBitForBit) {
  if (!HasCudaDevice()) GTEST_SKIP() << "no CUDA device";
  absl::StatusOr<Tensor> host = Tensor::Zeros(DType::kBF16, {3, 11});
  ASSERT_TRUE(host.ok());
  auto* bits = host->mutable_data_as<uint16_t>();
  for (int i = 0; i < 33; ++i) bits[i] = static_cast<uint16_t>(0x3f80 + 7 * i);
  absl::StatusOr<Tensor> device = host->CopyTo(Device::kCuda);
  ASSERT_TRUE(device.ok()) << device.status();
  EXPECT_EQ(TensorToFloats(*device), TensorToFloats(*host));
}

TEST(TensorCuda, AnAllocationTooLargeIsResourceExhaustedNamingTheBytes) {
  if (!HasCudaDevice()) GTEST_SKIP() << "no CUDA device";
  // 2^50 bytes (a pebibyte): more than any device holds.
  absl::StatusOr<Tensor> t =
      Tensor::Zeros(DType::kF32, {int64_t{1} << 24, int64_t{1} << 24}, Device::kCuda);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kResourceExhausted) << t.status();
  EXPECT_THAT(t.status().message(), HasSubstr("1125899906842624 bytes"));
}

}  // namespace
}  // namespace pagoda
