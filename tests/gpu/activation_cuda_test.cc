// kernels/cuda/activation.cu against its CPU twin: random odd-sized inputs, output poisoned with
// NaN. fp32 bound: 1e-5 relative (expf on the device against the CPU's Cephes exp, each within
// about 2 ulp), for SiLU-and-mul and GELU-tanh-and-mul; the soft-cap's cap - 2 cap / (1 + e) form
// loses about ulp(cap) to cancellation near 0 on both sides, so its bound is 4e-5 (cap 30). Needs a
// CUDA device; skips without one.
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/activation.h"
#include "kernels/cuda/device_memory.h"
#include "tests/gpu/cuda_test_util.h"

namespace pagoda::kernels {
namespace {

using testing::DeviceArray;
using testing::kNaN;

TEST(SiluAndMulCuda, MatchesCpuOnOddShapes) {
  if (!testing::HasCudaDevice()) GTEST_SKIP() << "no CUDA device";
  for (const auto& [n, d] : {std::pair<int64_t, int64_t>{1, 1}, {5, 333}, {17, 2049}}) {
    SCOPED_TRACE(::testing::Message() << "num_tokens=" << n << " d=" << d);
    std::mt19937 rng(static_cast<uint32_t>(n + d));
    const std::vector<float> in = testing::RandomFloats(n * 2 * d, rng, -8.0f, 8.0f);
    std::vector<float> expected(n * d, kNaN);
    ASSERT_TRUE(
        SiluAndMul({.input = in.data(), .output = expected.data(), .num_tokens = n, .d = d}).ok());
    DeviceArray<float> din(in), dout(std::vector<float>(n * d, kNaN));
    const absl::Status s = SiluAndMul({.input = din.get(),
                                       .output = dout.get(),
                                       .num_tokens = n,
                                       .d = d,
                                       .device = Device::kCuda});
    ASSERT_TRUE(s.ok()) << s;
    ASSERT_TRUE(cuda::Synchronize().ok());
    testing::ExpectClose(dout.Host(), expected, 1e-5f);
  }
}

TEST(GeluTanhAndMulCuda, MatchesCpuOnOddShapes) {
  if (!testing::HasCudaDevice()) GTEST_SKIP() << "no CUDA device";
  for (const auto& [n, d] : {std::pair<int64_t, int64_t>{1, 1}, {5, 333}, {17, 2049}}) {
    SCOPED_TRACE(::testing::Message() << "num_tokens=" << n << " d=" << d);
    std::mt19937 rng(static_cast<uint32_t>(3 * n + d));
    const std::vector<float> in = testing::RandomFloats(n * 2 * d, rng, -8.0f, 8.0f);
    std::vector<float> expected(n * d, kNaN);
    ASSERT_TRUE(
        GeluTanhAndMul({.input = in.data(), .output = expected.data(), .num_tokens = n, .d = d})
            .ok());
    DeviceArray<float> din(in), dout(std::vector<float>(n * d, kNaN));
    const absl::Status s = GeluTanhAndMul({.input = din.get(),
                                           .output = dout.get(),
                                           .num_tokens = n,
                                           .d = d,
                                           .device = Device::kCuda});
    ASSERT_TRUE(s.ok()) << s;
    ASSERT_TRUE(cuda::Synchronize().ok());
    testing::ExpectClose(dout.Host(), expected, 1e-5f);
  }
}

TEST(SoftCapCuda, MatchesCpuOnOddSizes) {
  if (!testing::HasCudaDevice()) GTEST_SKIP() << "no CUDA device";
  for (const int64_t count : {int64_t{1}, int64_t{4097}, int64_t{100003}}) {
    SCOPED_TRACE(::testing::Message() << "count=" << count);
    std::mt19937 rng(static_cast<uint32_t>(count));
    std::vector<float> expected = testing::RandomFloats(count, rng, -90.0f, 90.0f);
    DeviceArray<float> data(expected);
    ASSERT_TRUE(SoftCap({.data = expected.data(), .count = count, .cap = 30.0f}).ok());
    const absl::Status s =
        SoftCap({.data = data.get(), .count = count, .cap = 30.0f, .device = Device::kCuda});
    ASSERT_TRUE(s.ok()) << s;
    ASSERT_TRUE(cuda::Synchronize().ok());
    testing::ExpectClose(data.Host(), expected, 4e-5f);
  }
}

}  // namespace
}  // namespace pagoda::kernels
