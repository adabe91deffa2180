#include "kernels/dequantize.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_format.h"
#include "common/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

// Fixtures written at test time by tests/data/make_quant_fixtures.py with the gguf package
// (the make_quant_fixtures CTest fixture; see tests/CMakeLists.txt).
#ifndef PAGODA_QUANT_FIXTURE_DIR
#error "PAGODA_QUANT_FIXTURE_DIR must name the folder make_quant_fixtures.py writes"
#endif

namespace pagoda::kernels {
namespace {

using ::testing::HasSubstr;

std::string Fixture(const std::string& name) {
  absl::StatusOr<std::string> bytes =
      ReadFileToString(std::string(PAGODA_QUANT_FIXTURE_DIR) + "/" + name);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return bytes.ok() ? *bytes : std::string();
}

std::vector<float> Floats(const std::string& bytes) {
  std::vector<float> v(bytes.size() / sizeof(float));
  std::memcpy(v.data(), bytes.data(), v.size() * sizeof(float));
  return v;
}

// Bitwise equality, reporting the first few mismatches with their block and bit patterns.
void ExpectSameBits(const std::vector<float>& got, const std::vector<float>& want,
                    int64_t block_elements, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int mismatches = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const uint32_t g = std::bit_cast<uint32_t>(got[i]);
    const uint32_t w = std::bit_cast<uint32_t>(want[i]);
    if (g == w) continue;
    if (++mismatches <= 5) {
      ADD_FAILURE() << absl::StrFormat("%s: element %d (block %d): got %08x (%g), want %08x (%g)",
                                       what, i, i / block_elements, g, got[i], w, want[i]);
    }
  }
  EXPECT_EQ(mismatches, 0) << what;
}

class DequantizeFixture : public ::testing::TestWithParam<DType> {};

TEST_P(DequantizeFixture, EqualsGgufBitForBit) {
  const DTypeTraits& t = Traits(GetParam());
  const std::string name(t.ggml_name);
  const std::string blocks = Fixture("dequantize_" + name + ".bin");
  const std::vector<float> want = Floats(Fixture("dequantize_" + name + ".f32"));
  ASSERT_FALSE(want.empty());
  const int64_t num_elements = static_cast<int64_t>(want.size());
  ASSERT_EQ(static_cast<int64_t>(blocks.size()), num_elements / t.block_elements * t.block_bytes);

  // The whole fixture at once (parallel runs of blocks), then block by block.
  std::vector<float> got(want.size());
  ASSERT_TRUE(
      Dequantize(
          {.dtype = t.dtype, .src = blocks.data(), .dst = got.data(), .num_elements = num_elements})
          .ok());
  ExpectSameBits(got, want, t.block_elements, name + " (whole)");

  std::fill(got.begin(), got.end(), 0.0f);
  for (int64_t b = 0; b < num_elements / t.block_elements; ++b) {
    ASSERT_TRUE(Dequantize({.dtype = t.dtype,
                            .src = blocks.data() + b * t.block_bytes,
                            .dst = got.data() + b * t.block_elements,
                            .num_elements = t.block_elements})
                    .ok());
  }
  ExpectSameBits(got, want, t.block_elements, name + " (per block)");
}

INSTANTIATE_TEST_SUITE_P(AllDTypes, DequantizeFixture,
                         ::testing::Values(DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0,
                                           DType::kQ4_0, DType::kQ4_1, DType::kQ5_0, DType::kQ5_1,
                                           DType::kQ2_K, DType::kQ3_K, DType::kQ4_K, DType::kQ5_K,
                                           DType::kQ6_K),
                         [](const ::testing::TestParamInfo<DType>& info) {
                           return std::string(Traits(info.param).ggml_name);
                         });

class QuantizeFixture : public ::testing::TestWithParam<DType> {};

TEST_P(QuantizeFixture, EqualsGgufBitForBit) {
  const DTypeTraits& t = Traits(GetParam());
  const std::string name(t.ggml_name);
  const std::vector<float> input = Floats(Fixture("quantize_" + name + ".f32"));
  const std::string want = Fixture("quantize_" + name + ".bin");
  ASSERT_FALSE(input.empty());
  const int64_t num_elements = static_cast<int64_t>(input.size());
  std::string got(want.size(), '\0');
  ASSERT_TRUE(
      Quantize(
          {.dtype = t.dtype, .src = input.data(), .dst = got.data(), .num_elements = num_elements})
          .ok());
  int mismatches = 0;
  for (int64_t b = 0; b < num_elements / t.block_elements; ++b) {
    const std::string_view g(got.data() + b * t.block_bytes, t.block_bytes);
    const std::string_view w(want.data() + b * t.block_bytes, t.block_bytes);
    if (g == w) continue;
    if (++mismatches <= 5) {
      std::string inputs;
      for (int64_t i = 0; i < std::min<int64_t>(t.block_elements, 4); ++i) {
        inputs +=
            absl::StrFormat(" %08x", std::bit_cast<uint32_t>(input[b * t.block_elements + i]));
      }
      ADD_FAILURE() << name << ": block " << b << " differs; inputs" << inputs;
    }
  }
  EXPECT_EQ(mismatches, 0) << name;
}

INSTANTIATE_TEST_SUITE_P(Targets, QuantizeFixture,
                         ::testing::Values(DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0),
                         [](const ::testing::TestParamInfo<DType>& info) {
                           return std::string(Traits(info.param).ggml_name);
                         });

TEST(Quantize, Q8_0RoundTripIsWithinHalfAStep) {
  // Not a reference comparison: the property that makes Q8_0 activations usable. The step d is
  // max|x| / 127 <= 3 / 127; rounding to a step costs d / 2, and storing d as float16 (relative
  // error 2^-11) costs up to 127 d 2^-11 more.
  std::vector<float> x(64);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * static_cast<float>(i)) * 3.0f;
  std::vector<uint8_t> q(2 * Traits(DType::kQ8_0).block_bytes);
  std::vector<float> back(x.size());
  ASSERT_TRUE(
      Quantize({.dtype = DType::kQ8_0, .src = x.data(), .dst = q.data(), .num_elements = 64}).ok());
  ASSERT_TRUE(
      Dequantize({.dtype = DType::kQ8_0, .src = q.data(), .dst = back.data(), .num_elements = 64})
          .ok());
  for (size_t i = 0; i < x.size(); ++i)
    EXPECT_NEAR(back[i], x[i], 3.0f / 127 * (0.5f + 127.0f / 2048 + 1e-3f)) << i;
}

TEST(Dequantize, RejectsPartialBlocksAndNullOperands) {
  float out[32];
  uint8_t in[34] = {};
  absl::Status s = Dequantize({.dtype = DType::kQ4_K, .src = in, .dst = out, .num_elements = 32});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("not a whole number of 256-element blocks"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("q4_K"));
  s = Dequantize({.dtype = DType::kQ8_0, .src = nullptr, .dst = out, .num_elements = 32});
  EXPECT_THAT(std::string(s.message()), HasSubstr("null"));
  EXPECT_TRUE(Dequantize({.dtype = DType::kQ8_0, .num_elements = 0}).ok());
  EXPECT_FALSE(Dequantize({.dtype = DType::kF32, .src = in, .dst = out, .num_elements = -1}).ok());
  EXPECT_THAT(
      std::string(
          Dequantize(
              {.dtype = static_cast<DType>(kNumDTypes), .src = in, .dst = out, .num_elements = 1})
              .message()),
      HasSubstr("unknown dtype"));
}

TEST(Quantize, RejectsTypesWithoutAConversion) {
  float in[256] = {};
  uint8_t out[256];
  for (DType d : {DType::kQ4_0, DType::kQ4_K, DType::kQ6_K}) {
    EXPECT_FALSE(CanQuantizeTo(d));
    const absl::Status s = Quantize({.dtype = d, .src = in, .dst = out, .num_elements = 256});
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(s.message()), HasSubstr("no conversion from float32"));
  }
  EXPECT_TRUE(CanQuantizeTo(DType::kBF16));
  EXPECT_THAT(
      std::string(
          Quantize({.dtype = DType::kQ8_0, .src = in, .dst = out, .num_elements = 31}).message()),
      HasSubstr("not a whole number of 32-element blocks"));
}

}  // namespace
}  // namespace pagoda::kernels
