// kernels/cuda/rms_norm.cu against its CPU twin: random odd-sized inputs, outputs poisoned with
// NaN. fp32 bound: 2e-5 relative (the sum of squares is reduced in another order: a few ulp).
// Needs a CUDA device; skips without one.
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cuda/device_memory.h"
#include "kernels/rms_norm.h"
#include "tests/gpu/cuda_test_util.h"

namespace pagoda::kernels {
namespace {

using testing::DeviceArray;
using testing::kNaN;

constexpr float kF32Tolerance = 2e-5f;

struct Shape {
  int64_t num_tokens;
  int64_t hidden_size;
};

void PrintTo(const Shape& s, std::ostream* os) {
  *os << "num_tokens=" << s.num_tokens << " hidden_size=" << s.hidden_size;
}

class RmsNormCuda : public ::testing::TestWithParam<Shape> {};

TEST_P(RmsNormCuda, PlainMatchesCpu) {
  if (!testing::HasCudaDevice()) GTEST_SKIP() << "no CUDA device";
  const auto [n, d] = GetParam();
  std::mt19937 rng(static_cast<uint32_t>(n * 1000 + d));
  const std::vector<float> x = testing::RandomFloats(n * d, rng);
  const std::vector<float> w = testing::RandomFloats(d, rng, 0.5f, 1.5f);
  std::vector<float> expected(n * d, kNaN);
  ASSERT_TRUE(RmsNorm({.input = x.data(),
                       .weight = w.data(),
                       .output = expected.data(),
                       .num_tokens = n,
                       .hidden_size = d,
                       .eps = 1e-5f})
                  .ok());

  DeviceArray<float> dx(x), dw(w), dout(std::vector<float>(n * d, kNaN));
  const absl::Status s = RmsNorm({.input = dx.get(),
                                  .weight = dw.get(),
                                  .output = dout.get(),
                                  .num_tokens = n,
                                  .hidden_size = d,
                                  .eps = 1e-5f,
                                  .device = Device::kCuda});
  ASSERT_TRUE(s.ok()) << s;
  ASSERT_TRUE(cuda::Synchronize().ok());
  testing::ExpectClose(dout.Host(), expected, kF32Tolerance);
}

TEST_P(RmsNormCuda, FusedResidualAddInPlaceMatchesCpu) {
  if (!testing::HasCudaDevice()) GTEST_SKIP() << "no CUDA device";
  const auto [n, d] = GetParam();
  std::mt19937 rng(static_cast<uint32_t>(n * 1000 + d + 1));
  const std::vector<float> x = testing::RandomFloats(n * d, rng);
  const std::vector<float> residual = testing::RandomFloats(n * d, rng);
  const std::vector<float> w = testing::RandomFloats(d, rng, 0.5f, 1.5f);
  // output aliases input, as the model's layers call it.
  std::vector<float> expected = x;
  std::vector<float> expected_residual = residual;
  ASSERT_TRUE(RmsNorm({.input = expected.data(),
                       .weight = w.data(),
                       .output = expected.data(),
                       .residual = expected_residual.data(),
                       .num_tokens = n,
                       .hidden_size = d,
                       .eps = 1e-6f})
                  .ok());

  DeviceArray<float> dx(x), dw(w), dres(residual);
  const absl::Status s = RmsNorm({.input = dx.get(),
                                  .weight = dw.get(),
                                  .output = dx.get(),
                                  .residual = dres.get(),
                                  .num_tokens = n,
                                  .hidden_size = d,
                                  .eps = 1e-6f,
                                  .device = Device::kCuda});
  ASSERT_TRUE(s.ok()) << s;
  ASSERT_TRUE(cuda::Synchronize().ok());
  // residual + input is one fp32 add on both devices: the same bits.
  testing::ExpectSameBits(dres.Host(), expected_residual);
  testing::ExpectClose(dx.Host(), expected, kF32Tolerance);
}

// Rows in groups spaced apart (per-head qk-norm in a fused QKV row), fused with the residual
// add: the normed rows as the CPU's, the gaps between groups untouched.
TEST_P(RmsNormCuda, GroupedRowsMatchCpu) {
  if (!testing::HasCudaDevice()) GTEST_SKIP() << "no CUDA device";
  const auto [n, d] = GetParam();
  constexpr int64_t kRowsPerGroup = 3;
  const int64_t stride = kRowsPerGroup * d + 5;
  const int64_t groups = n;
  const int64_t rows = groups * kRowsPerGroup - 1;
  std::mt19937 rng(static_cast<uint32_t>(n * 1000 + d + 2));
  const std::vector<float> x = testing::RandomFloats(groups * stride, rng);
  const std::vector<float> residual = testing::RandomFloats(groups * stride, rng);
  const std::vector<float> w = testing::RandomFloats(d, rng, 0.5f, 1.5f);
  std::vector<float> expected = x;
  std::vector<float> expected_residual = residual;
  const RmsNormParams cpu{.input = expected.data(),
                          .weight = w.data(),
                          .output = expected.data(),
                          .residual = expected_residual.data(),
                          .num_tokens = rows,
                          .hidden_size = d,
                          .rows_per_group = kRowsPerGroup,
                          .group_stride = stride,
                          .eps = 1e-6f};
  ASSERT_TRUE(RmsNorm(cpu).ok());

  DeviceArray<float> dx(x), dw(w), dres(residual);
  RmsNormParams device = cpu;
  device.input = dx.get();
  device.weight = dw.get();
  device.output = dx.get();
  device.residual = dres.get();
  device.device = Device::kCuda;
  const absl::Status s = RmsNorm(device);
  ASSERT_TRUE(s.ok()) << s;
  ASSERT_TRUE(cuda::Synchronize().ok());
  testing::ExpectSameBits(dres.Host(), expected_residual);
  testing::ExpectClose(dx.Host(), expected, kF32Tolerance);
}

INSTANTIATE_TEST_SUITE_P(OddShapes, RmsNormCuda,
                         ::testing::Values(Shape{1, 1}, Shape{7, 77}, Shape{3, 1001},
                                           Shape{33, 4099}),
                         [](const ::testing::TestParamInfo<Shape>& info) {
                           return "tokens" + std::to_string(info.param.num_tokens) + "_hidden" +
                                  std::to_string(info.param.hidden_size);
                         });

}  // namespace
}  // namespace pagoda::kernels
