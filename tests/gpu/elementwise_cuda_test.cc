// kernels/cuda/elementwise.cu against its CPU twin: random odd-sized inputs, outputs poisoned with
// NaN. Copies and one fp32 product per element: bit for bit. Needs a CUDA device; skips without
// one.
#include <random>
#include <tuple>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cuda/device_memory.h"
#include "kernels/elementwise.h"
#include "tests/gpu/cuda_test_util.h"

namespace pagoda::kernels {
namespace {

using testing::DeviceArray;
using testing::kNaN;

TEST(BroadcastRowsCuda, MatchesCpuOnOddShapes) {
  if (!testing::HasCudaDevice()) GTEST_SKIP() << "no CUDA device";
  for (const auto& [rows, cols, ldo] :
       {std::tuple<int64_t, int64_t, int64_t>{1, 1, 0}, {7, 333, 0}, {130, 97, 101}}) {
    SCOPED_TRACE(::testing::Message() << "rows=" << rows << " cols=" << cols << " ldo=" << ldo);
    std::mt19937 rng(static_cast<uint32_t>(rows + cols));
    const std::vector<float> row = testing::RandomFloats(cols, rng);
    const int64_t stride = ldo == 0 ? cols : ldo;
    std::vector<float> expected(rows * stride, kNaN);
    ASSERT_TRUE(
        BroadcastRows(
            {.row = row.data(), .output = expected.data(), .rows = rows, .cols = cols, .ldo = ldo})
            .ok());
    DeviceArray<float> drow(row), dout(std::vector<float>(rows * stride, kNaN));
    const absl::Status s = BroadcastRows({.row = drow.get(),
                                          .output = dout.get(),
                                          .rows = rows,
                                          .cols = cols,
                                          .ldo = ldo,
                                          .device = Device::kCuda});
    ASSERT_TRUE(s.ok()) << s;
    ASSERT_TRUE(cuda::Synchronize().ok());
    testing::ExpectSameBits(dout.Host(), expected);  // the gaps past cols stay NaN on both
  }
}

TEST(ScaleCuda, MatchesCpuBitForBit) {
  if (!testing::HasCudaDevice()) GTEST_SKIP() << "no CUDA device";
  for (const int64_t count : {int64_t{1}, int64_t{255}, int64_t{100003}}) {
    std::mt19937 rng(static_cast<uint32_t>(count));
    std::vector<float> expected = testing::RandomFloats(count, rng);
    DeviceArray<float> data(expected);
    ASSERT_TRUE(Scale({.data = expected.data(), .count = count, .factor = 45.254833f}).ok());
    const absl::Status s =
        Scale({.data = data.get(), .count = count, .factor = 45.254833f, .device = Device::kCuda});
    ASSERT_TRUE(s.ok()) << s;
    ASSERT_TRUE(cuda::Synchronize().ok());
    testing::ExpectSameBits(data.Host(), expected);
  }
}

TEST(GatherRowsCuda, MatchesCpuWithRepeatsAndEveryRow) {
  if (!testing::HasCudaDevice()) GTEST_SKIP() << "no CUDA device";
  const int64_t width = 577, inputs = 37;
  std::mt19937 rng(7);
  const std::vector<float> in = testing::RandomFloats(inputs * width, rng);
  std::vector<int64_t> indices = {36, 0, 5, 5, 17};
  for (int64_t i = 0; i < inputs; ++i) indices.push_back(i);
  const int64_t rows = static_cast<int64_t>(indices.size());
  std::vector<float> expected(rows * width, kNaN);
  ASSERT_TRUE(GatherRows({.input = in.data(),
                          .indices = indices.data(),
                          .output = expected.data(),
                          .num_rows = rows,
                          .num_input_rows = inputs,
                          .width = width})
                  .ok());
  DeviceArray<float> din(in), dout(std::vector<float>(rows * width, kNaN));
  DeviceArray<int64_t> dindices(indices);
  const absl::Status s = GatherRows({.input = din.get(),
                                     .indices = dindices.get(),
                                     .output = dout.get(),
                                     .num_rows = rows,
                                     .num_input_rows = inputs,
                                     .width = width,
                                     .indices_checked = true,
                                     .device = Device::kCuda});
  ASSERT_TRUE(s.ok()) << s;
  ASSERT_TRUE(cuda::Synchronize().ok());
  testing::ExpectSameBits(dout.Host(), expected);
}

}  // namespace
}  // namespace pagoda::kernels
