// kernels/cuda/activation.cu against its CPU twin: random odd-sized inputs, output poisoned with
// NaN. fp32 bound: 1e-5 relative (expf on the device against the CPU's Cephes exp, each within
// about 2 ulp). Needs a CUDA device; skips without one.
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

}  // namespace
}  // namespace pagoda::kernels
