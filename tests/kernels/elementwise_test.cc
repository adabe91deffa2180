#include "kernels/elementwise.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagoda::kernels {
namespace {

using ::testing::HasSubstr;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

std::vector<float> Random(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-4.0f, 4.0f);
  std::vector<float> v(n);
  for (float& x : v) x = uniform(rng);
  return v;
}

// The window [rows, cols] of a [rows, ldo] output holds the row; the columns past it keep their
// poison.
TEST(BroadcastRows, WritesTheRowIntoEveryRowOfTheWindowOnly) {
  for (const int64_t ldo : {int64_t{0}, int64_t{11}}) {
    const int64_t rows = 5, cols = 7, stride = ldo == 0 ? cols : ldo;
    const std::vector<float> row = Random(cols, 1);
    std::vector<float> out(rows * stride, kNaN);
    ASSERT_TRUE(
        BroadcastRows(
            {.row = row.data(), .output = out.data(), .rows = rows, .cols = cols, .ldo = ldo})
            .ok());
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t i = 0; i < stride; ++i) {
        if (i < cols) {
          EXPECT_EQ(out[r * stride + i], row[i]) << r << "," << i;
        } else {
          EXPECT_TRUE(std::isnan(out[r * stride + i])) << r << "," << i;
        }
      }
    }
  }
}

TEST(BroadcastRows, RejectsBadShapes) {
  const float row[3] = {};
  float out[6];
  const absl::Status s = BroadcastRows({.row = row, .output = out, .rows = 2, .cols = 3, .ldo = 2});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("ldo=2"));
  EXPECT_FALSE(BroadcastRows({.row = nullptr, .output = out, .rows = 2, .cols = 3}).ok());
  EXPECT_TRUE(BroadcastRows({.row = nullptr, .output = nullptr, .rows = 0, .cols = 3}).ok());
}

TEST(Scale, MultipliesEveryElement) {
  std::vector<float> data = Random(1001, 2);
  const std::vector<float> before = data;
  ASSERT_TRUE(Scale({.data = data.data(), .count = 1001, .factor = 6.9282032f}).ok());
  for (size_t i = 0; i < data.size(); ++i) {
    // One fp32 rounding of the exact product.
    EXPECT_EQ(data[i], static_cast<float>(double{before[i]} * double{6.9282032f})) << i;
  }
  EXPECT_EQ(Scale({.data = data.data(), .count = 3, .factor = kNaN}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Scale({.data = nullptr, .count = 3, .factor = 2.0f}).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(GatherRows, CopiesTheIndexedRowsInOrderWithRepeats) {
  const int64_t width = 9, inputs = 6;
  const std::vector<float> in = Random(inputs * width, 3);
  const std::vector<int64_t> indices = {5, 0, 3, 3};
  std::vector<float> out(indices.size() * width, kNaN);
  ASSERT_TRUE(GatherRows({.input = in.data(),
                          .indices = indices.data(),
                          .output = out.data(),
                          .num_rows = 4,
                          .num_input_rows = inputs,
                          .width = width})
                  .ok());
  for (size_t r = 0; r < indices.size(); ++r) {
    for (int64_t i = 0; i < width; ++i) {
      EXPECT_EQ(out[r * width + i], in[indices[r] * width + i]) << r << "," << i;
    }
  }
}

TEST(GatherRows, AnIndexOutsideTheInputIsRejectedAndNothingIsWritten) {
  const std::vector<float> in(4 * 3, 1.0f);
  for (const int64_t bad : {int64_t{-1}, int64_t{4}}) {
    const std::vector<int64_t> indices = {0, bad};
    std::vector<float> out(2 * 3, kNaN);
    const absl::Status s = GatherRows({.input = in.data(),
                                       .indices = indices.data(),
                                       .output = out.data(),
                                       .num_rows = 2,
                                       .num_input_rows = 4,
                                       .width = 3});
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(s.message(), HasSubstr("indices[1]"));
    for (const float x : out) EXPECT_TRUE(std::isnan(x));
  }
}

TEST(GatherRows, OnCudaTheIndicesMustHaveBeenChecked) {
  const float in[3] = {};
  const int64_t indices[1] = {0};
  float out[3];
  const absl::Status s = GatherRows({.input = in,
                                     .indices = indices,
                                     .output = out,
                                     .num_rows = 1,
                                     .num_input_rows = 1,
                                     .width = 3,
                                     .device = Device::kCuda});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("indices_checked"));
}

}  // namespace
}  // namespace pagoda::kernels
