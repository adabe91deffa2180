// kernels/cuda/gemm.cu against a float64 reference and its CPU twin, on random odd shapes with
// the output poisoned (NaN) outside the window it must write. Bounds, per element, relative to
// S = Σ_k |a_k · b_k| (the scale of the sum's rounding):
//   - against float64 of exactly what the device multiplies (fp32 activations for F32 weights;
//     activations rounded to bfloat16 / float16 for those weights): 1e-5 · S, fp32 accumulation;
//   - F32 against the CPU twin: 1e-5 · S; BF16 / F16 against the CPU twin, which keeps the
//     activations in fp32: 2^-8 · S (bfloat16's rounding, half an ulp of 8 bits, plus slack) and
//     2^-10 · S (float16).
// Needs a CUDA device (and cuBLAS on the loader's path); skips without one.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <ostream>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/internal/half.h"
#include "kernels/cuda/device_memory.h"
#include "kernels/gemm.h"
#include "tests/gpu/cuda_test_util.h"

namespace pagoda::kernels {
namespace {

using testing::DeviceArray;
using testing::kNaN;

struct Shape {
  int64_t m, n, k, ldc_pad;
  float alpha, beta;
};

void PrintTo(const Shape& s, std::ostream* os) {
  *os << "m=" << s.m << " n=" << s.n << " k=" << s.k << " ldc=n+" << s.ldc_pad
      << " alpha=" << s.alpha << " beta=" << s.beta;
}

// The weights in `dtype` (F32, BF16 or F16) as bytes, and their values as floats.
struct Weights {
  std::vector<uint8_t> bytes;
  std::vector<float> values;
};

Weights MakeWeights(DType dtype, const std::vector<float>& raw) {
  Weights w;
  w.values.resize(raw.size());
  if (dtype == DType::kF32) {
    w.bytes.resize(raw.size() * 4);
    std::memcpy(w.bytes.data(), raw.data(), w.bytes.size());
    w.values = raw;
    return w;
  }
  std::vector<uint16_t> half(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    half[i] = dtype == DType::kBF16 ? internal::FloatToBf16(raw[i]) : internal::FloatToHalf(raw[i]);
    w.values[i] =
        dtype == DType::kBF16 ? internal::Bf16ToFloat(half[i]) : internal::HalfToFloat(half[i]);
  }
  w.bytes.resize(half.size() * 2);
  std::memcpy(w.bytes.data(), half.data(), w.bytes.size());
  return w;
}

// What the device multiplies the weights by: the activations, rounded for 16-bit weights.
float DeviceActivation(DType dtype, float a) {
  if (dtype == DType::kBF16) return internal::Bf16ToFloat(internal::FloatToBf16(a));
  if (dtype == DType::kF16) return internal::HalfToFloat(internal::FloatToHalf(a));
  return a;
}

class GemmCuda : public ::testing::TestWithParam<Shape> {
 protected:
  void Check(DType dtype, double twin_bound) {
    if (!testing::HasCudaDevice()) GTEST_SKIP() << "no CUDA device";
    const Shape s = GetParam();
    const int64_t ldc = s.n + s.ldc_pad;
    std::mt19937 rng(static_cast<uint32_t>(s.m * 7919 + s.n * 104729 + s.k + int(dtype)));
    const std::vector<float> a = testing::RandomFloats(s.m * s.k, rng);
    const Weights w = MakeWeights(dtype, testing::RandomFloats(s.n * s.k, rng, -1.0f, 1.0f));
    // C starts random inside the window (beta reads it) and NaN in the padding (never touched).
    std::vector<float> c0(s.m * ldc, kNaN);
    const std::vector<float> start = testing::RandomFloats(s.m * s.n, rng);
    for (int64_t i = 0; i < s.m; ++i) {
      for (int64_t j = 0; j < s.n; ++j) c0[i * ldc + j] = start[i * s.n + j];
    }
    if (s.beta == 0.0f) {  // beta 0 overwrites: even a NaN there must not leak through
      for (int64_t i = 0; i < s.m; ++i) {
        for (int64_t j = 0; j < s.n; ++j) c0[i * ldc + j] = kNaN;
      }
    }

    std::vector<float> twin = c0;
    if (s.beta == 0.0f) std::fill(twin.begin(), twin.end(), 0.0f);  // the CPU twin's own rule
    ASSERT_TRUE(Gemm({.a = a.data(),
                      .b = w.bytes.data(),
                      .b_dtype = dtype,
                      .c = twin.data(),
                      .m = s.m,
                      .n = s.n,
                      .k = s.k,
                      .alpha = s.alpha,
                      .beta = s.beta,
                      .ldc = ldc})
                    .ok());

    DeviceArray<float> da(a), dc(c0);
    DeviceArray<uint8_t> db(w.bytes);
    const absl::Status status = Gemm({.a = da.get(),
                                      .b = db.get(),
                                      .b_dtype = dtype,
                                      .c = dc.get(),
                                      .m = s.m,
                                      .n = s.n,
                                      .k = s.k,
                                      .alpha = s.alpha,
                                      .beta = s.beta,
                                      .ldc = ldc,
                                      .device = Device::kCuda});
    ASSERT_TRUE(status.ok()) << status;
    ASSERT_TRUE(cuda::Synchronize().ok());
    const std::vector<float> got = dc.Host();

    int failures = 0;
    for (int64_t i = 0; i < s.m && failures < 5; ++i) {
      for (int64_t j = 0; j < ldc && failures < 5; ++j) {
        const float value = got[i * ldc + j];
        if (j >= s.n) {
          if (!std::isnan(value)) {
            ADD_FAILURE() << "row " << i << " column " << j << " is padding but holds " << value;
            ++failures;
          }
          continue;
        }
        double exact = 0, scale = 0;
        for (int64_t t = 0; t < s.k; ++t) {
          const double product =
              double(DeviceActivation(dtype, a[i * s.k + t])) * w.values[j * s.k + t];
          exact += product;
          scale += std::abs(product);
        }
        const double before = s.beta == 0.0f ? 0.0 : double(start[i * s.n + j]);
        const double expected = double(s.alpha) * exact + double(s.beta) * before;
        const double bound = 1e-5 * (std::abs(s.alpha) * scale + std::abs(s.beta * before)) + 1e-6;
        if (!(std::abs(value - expected) <= bound)) {
          ADD_FAILURE() << "C[" << i << ", " << j << "] = " << value << ", float64 " << expected
                        << " (bound " << bound << ")";
          ++failures;
        }
        const double twin_value = twin[i * ldc + j];
        const double loose =
            twin_bound * (std::abs(s.alpha) * scale) + 1e-5 * std::abs(before) + 1e-6;
        if (!(std::abs(value - twin_value) <= loose)) {
          ADD_FAILURE() << "C[" << i << ", " << j << "] = " << value << ", CPU twin " << twin_value
                        << " (bound " << loose << ")";
          ++failures;
        }
      }
    }
  }
};

TEST_P(GemmCuda, F32MatchesFloat64AndCpu) { Check(DType::kF32, 1e-5); }
TEST_P(GemmCuda, Bf16MatchesFloat64OfRoundedActivationsAndCpu) {
  Check(DType::kBF16, std::ldexp(1.0, -8));
}
TEST_P(GemmCuda, F16MatchesFloat64OfRoundedActivationsAndCpu) {
  Check(DType::kF16, std::ldexp(1.0, -10));
}

INSTANTIATE_TEST_SUITE_P(Shapes, GemmCuda,
                         ::testing::Values(Shape{1, 7, 33, 0, 1.0f, 0.0f},
                                           Shape{3, 65, 129, 5, 1.0f, 1.0f},
                                           Shape{17, 33, 300, 0, 0.5f, 1.0f},
                                           Shape{64, 128, 256, 3, 1.0f, 0.0f},
                                           Shape{257, 96, 576, 0, 1.0f, 0.0f}));

TEST(GemmCudaErrors, QuantizedWeightsAreUnimplementedNamingTheType) {
  if (!testing::HasCudaDevice()) GTEST_SKIP() << "no CUDA device";
  DeviceArray<float> a(std::vector<float>(32, 1.0f)), c(std::vector<float>(2, 0.0f));
  DeviceArray<uint8_t> b(std::vector<uint8_t>(2 * 24, 0));  // two Q4_1 blocks of 32
  const absl::Status status = Gemm({.a = a.get(),
                                    .b = b.get(),
                                    .b_dtype = DType::kQ4_1,
                                    .c = c.get(),
                                    .m = 1,
                                    .n = 2,
                                    .k = 32,
                                    .device = Device::kCuda});
  EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented) << status;
  EXPECT_NE(status.message().find("q4_1"), absl::string_view::npos) << status;
}

}  // namespace
}  // namespace pagoda::kernels
