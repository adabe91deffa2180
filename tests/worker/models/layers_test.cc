#include "worker/models/layers.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/dequantize.h"
#include "tests/testing/smollm2_near_tie.h"

namespace pagoda {
namespace {

// A part of `rows` rows of random weights, stored in `dtype`.
Tensor RandomPart(DType dtype, int64_t rows, int64_t cols, std::mt19937& rng) {
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> values(static_cast<size_t>(rows * cols));
  for (float& x : values) x = uniform(rng);
  Tensor t = Tensor::Zeros(dtype, {rows, cols}).value();
  EXPECT_TRUE(kernels::Quantize({.dtype = dtype,
                                 .src = values.data(),
                                 .dst = t.mutable_data(),
                                 .num_elements = rows * cols})
                  .ok());
  return t;
}

// A projection whose parts have different types (a Q4_K_M file's q/k in Q4_K beside v in Q6_K)
// computes what one fp32 matrix of the dequantized rows computes: each part writes its own
// columns of the output, and the bias is added once. Tolerance: 1e-4 for fp32 round-off; the Q8_0
// part's columns on the default CPU path also carry the activations' 8-bit rounding
// (kernels/cpu/internal/integer_gemm.h): at most d_b / 2 per element, d_b = max |x| / 127 over
// its 32-element block b, so sum_b (d_b / 2) sum_{t in b} |w_t| more (1e-3 relative margin for
// the fp32 scale).
TEST(Linear, PartsOfDifferentTypesWriteTheirOwnColumns) {
  std::mt19937 rng(4);
  const int64_t k = 64, rows = 6;
  LinearWeight w;
  w.parts.push_back(RandomPart(DType::kF32, 3, k, rng));
  w.parts.push_back(RandomPart(DType::kBF16, 5, k, rng));
  w.parts.push_back(RandomPart(DType::kQ8_0, 2, k, rng));
  ASSERT_EQ(w.out_features(), 10);
  ASSERT_EQ(w.in_features(), k);
  const std::vector<float> dense = w.ToFloats();
  std::vector<float> bias_values(10);
  for (size_t i = 0; i < bias_values.size(); ++i) bias_values[i] = 0.25f * static_cast<float>(i);
  const Tensor bias = Tensor::FromFloats({10}, bias_values);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> x(rows * k);
  for (float& v : x) v = uniform(rng);
  for (bool with_bias : {false, true}) {
    std::vector<float> out(rows * 10, std::nanf(""));
    ASSERT_TRUE(Linear(x.data(), rows, w, with_bias ? bias : Tensor(), out.data()).ok());
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t j = 0; j < 10; ++j) {
        double want = with_bias ? bias_values[j] : 0.0;
        double rounding = 0.0;
        for (int64_t b = 0; b < k; b += 32) {
          double amax = 0.0, w_abs = 0.0;
          for (int64_t t = b; t < b + 32; ++t) {
            want += double{x[r * k + t]} * dense[j * k + t];
            amax = std::max(amax, std::abs(double{x[r * k + t]}));
            w_abs += std::abs(double{dense[j * k + t]});
          }
          rounding += amax / 127 / 2 * w_abs;
        }
        const bool rounded = j >= 8 && testing::CpuKernelsQuantizeActivations();  // the Q8_0 part
        EXPECT_NEAR(out[r * 10 + j], want, 1e-4 + (rounded ? (1 + 1e-3) * rounding : 0.0))
            << "row " << r << " column " << j;
      }
    }
  }
}

}  // namespace
}  // namespace pagoda
