// A CUDA request where there is no CUDA (a build with PAGODA_CUDA=OFF, or no driver or device) is
// a clear FailedPrecondition, never a crash. Skips where a device exists (tests/gpu/ covers it).
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/cuda/device_memory.h"
#include "kernels/gemm.h"
#include "kernels/rms_norm.h"
#include "kernels/sampling.h"
#include "kernels/tensor.h"

namespace pagoda {
namespace {

using ::testing::HasSubstr;

TEST(CudaUnavailable, TensorOnCudaIsFailedPrecondition) {
  if (kernels::cuda::DeviceCount() > 0) GTEST_SKIP() << "a CUDA device is present";
  absl::StatusOr<Tensor> t = Tensor::Zeros(DType::kF32, {3, 5}, Device::kCuda);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kFailedPrecondition) << t.status();
  EXPECT_THAT(t.status().message(), HasSubstr("60 bytes on the CUDA device"));
  EXPECT_EQ(Tensor::FromFloats({2}, std::vector<float>{1, 2}).CopyTo(Device::kCuda).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(CudaUnavailable, KernelOnCudaIsFailedPrecondition) {
  if (kernels::cuda::DeviceCount() > 0) GTEST_SKIP() << "a CUDA device is present";
  // Host pointers: in a CUDA build the launch fails before anything reads them.
  std::vector<float> x(6, 1.0f), w(3, 1.0f), y(6);
  const absl::Status s = kernels::RmsNorm({.input = x.data(),
                                           .weight = w.data(),
                                           .output = y.data(),
                                           .num_tokens = 2,
                                           .hidden_size = 3,
                                           .device = Device::kCuda});
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
}

TEST(CudaUnavailable, GemmOnCudaIsFailedPrecondition) {
  if (kernels::cuda::DeviceCount() > 0) GTEST_SKIP() << "a CUDA device is present";
  std::vector<float> c(4);
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kQ4_1}) {
    const int64_t k = dtype == DType::kQ4_1 ? 32 : 3;
    std::vector<float> wide(64, 0.0f);
    const absl::Status s = kernels::Gemm({.a = wide.data(),
                                          .b = wide.data(),
                                          .b_dtype = dtype,
                                          .c = c.data(),
                                          .m = 1,
                                          .n = 2,
                                          .k = k,
                                          .device = Device::kCuda});
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  }
}

TEST(CudaUnavailable, SamplingOnCudaIsFailedPrecondition) {
  if (kernels::cuda::DeviceCount() > 0) GTEST_SKIP() << "a CUDA device is present";
  std::vector<float> logits(2 * 5, 0.0f);
  std::vector<int32_t> ids(2);
  const std::vector<int32_t> rows = {1};
  for (const int32_t* selected : {static_cast<const int32_t*>(nullptr), rows.data()}) {
    const kernels::SamplingRows batch{.num_seqs = 2,
                                      .vocab_size = 5,
                                      .rows = selected,
                                      .num_rows = selected == nullptr ? 2 : 1,
                                      .device = Device::kCuda};
    const absl::Status s =
        kernels::Argmax({.batch = batch, .logits = logits.data(), .token_ids = ids.data()});
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  }
}

TEST(CudaUnavailable, BuildFlagMatchesTheBuild) {
#ifdef PAGODA_TEST_CUDA_BUILD
  EXPECT_TRUE(kernels::cuda::BuiltWithCuda());
#else
  EXPECT_FALSE(kernels::cuda::BuiltWithCuda());
#endif
}

}  // namespace
}  // namespace pagoda
