#include "common/dtype.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagoda {
namespace {

using ::testing::HasSubstr;

TEST(DType, BlockSizesFollowGgml) {
  // Sizes from GGML's block structs (gguf-py's GGML_QUANT_SIZES).
  EXPECT_EQ(Traits(DType::kQ8_0).block_bytes, 34);
  EXPECT_EQ(Traits(DType::kQ4_0).block_bytes, 18);
  EXPECT_EQ(Traits(DType::kQ4_1).block_bytes, 20);
  EXPECT_EQ(Traits(DType::kQ5_0).block_bytes, 22);
  EXPECT_EQ(Traits(DType::kQ5_1).block_bytes, 24);
  EXPECT_EQ(Traits(DType::kQ2_K).block_bytes, 84);
  EXPECT_EQ(Traits(DType::kQ3_K).block_bytes, 110);
  EXPECT_EQ(Traits(DType::kQ4_K).block_bytes, 144);
  EXPECT_EQ(Traits(DType::kQ5_K).block_bytes, 176);
  EXPECT_EQ(Traits(DType::kQ6_K).block_bytes, 210);
  EXPECT_EQ(Traits(DType::kQ6_K).block_elements, 256);
  EXPECT_EQ(Traits(DType::kBF16).block_bytes, 2);
  EXPECT_FALSE(Traits(DType::kF16).quantized);
  EXPECT_TRUE(Traits(DType::kQ4_K).quantized);
}

TEST(DType, MapsGgmlTypeIds) {
  for (int i = 0; i < kNumDTypes; ++i) {
    const DType d = static_cast<DType>(i);
    EXPECT_EQ(DTypeFromGgmlType(Traits(d).ggml_type), d) << DTypeName(d);
  }
  EXPECT_EQ(DTypeFromGgmlType(30), DType::kBF16);
  EXPECT_EQ(DTypeFromGgmlType(9), std::nullopt);  // q8_1: not a weight format here
  EXPECT_EQ(GgmlTypeName(16), "iq2_xxs");
  EXPECT_EQ(GgmlTypeName(41), "q1_0");
  EXPECT_EQ(GgmlTypeName(1000), "unknown");
}

TEST(DType, RowBytesChecksBlocksAndOverflow) {
  EXPECT_EQ(*RowBytes(DType::kQ4_K, 4096), 16 * 144);
  EXPECT_EQ(*RowBytes(DType::kF32, 3), 12);
  EXPECT_EQ(*RowBytes(DType::kQ8_0, 0), 0);
  EXPECT_THAT(RowBytes(DType::kQ8_0, 33).status().message(), HasSubstr("whole number"));
  EXPECT_FALSE(RowBytes(DType::kF32, -4).ok());
  EXPECT_THAT(RowBytes(DType::kF32, int64_t{1} << 62).status().message(), HasSubstr("overflow"));
}

}  // namespace
}  // namespace pagoda
