#include "kernels/kv_cache_write.h"

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/dequantize.h"

namespace pagoda::kernels {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kKvHeads = 3;
constexpr int64_t kDim = 5;
constexpr int64_t kBlockSize = 4;
constexpr int64_t kBlocks = 6;
constexpr int64_t kWidth = kKvHeads * kDim;

// Where element i of a token's kWidth (head i / kDim) lands for slot `slot`.
int64_t At(int64_t slot, int64_t i) {
  return KvCacheOffset(slot, i / kDim, kKvHeads, kDim, kBlockSize) + i % kDim;
}

class KvCacheWriteTest : public ::testing::Test {
 protected:
  KvCacheWriteParams Params(const std::vector<int64_t>& slots) {
    return {.key = key_.data(),
            .value = value_.data(),
            .key_cache = key_cache_.data(),
            .value_cache = value_cache_.data(),
            .slot_mapping = slots.data(),
            .num_tokens = static_cast<int64_t>(slots.size()),
            .num_kv_heads = kKvHeads,
            .head_dim = kDim,
            .block_size = kBlockSize,
            .num_blocks = kBlocks,
            .key_stride = kKeyStride,
            .value_stride = kWidth};
  }

  // Keys sit in a wider fused buffer (stride > packed width); values are packed.
  static constexpr int64_t kKeyStride = kWidth + 7;
  static constexpr int64_t kTokens = 7;
  std::vector<float> key_ = Random(kTokens * kKeyStride, 1);
  std::vector<float> value_ = Random(kTokens * kWidth, 2);
  std::vector<float> key_cache_ = std::vector<float>(kBlocks * kBlockSize * kWidth, kNaN);
  std::vector<float> value_cache_ = std::vector<float>(kBlocks * kBlockSize * kWidth, kNaN);

 private:
  static constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
  static std::vector<float> Random(int64_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = uniform(rng);
    return v;
  }
};

TEST_F(KvCacheWriteTest, TokensLandInTheirSlotsAndMinusOneIsSkipped) {
  // Slots across blocks, out of order; token 3 is padding.
  const std::vector<int64_t> slots = {5, 6, 23, -1, 0, 12, 7};
  ASSERT_TRUE(WriteKvCache(Params(slots)).ok());
  std::vector<bool> written(kBlocks * kBlockSize, false);
  for (size_t t = 0; t < slots.size(); ++t) {
    if (slots[t] < 0) continue;
    written[slots[t]] = true;
    for (int64_t i = 0; i < kWidth; ++i) {
      EXPECT_EQ(key_cache_[At(slots[t], i)], key_[t * kKeyStride + i]) << "token " << t;
      EXPECT_EQ(value_cache_[At(slots[t], i)], value_[t * kWidth + i]) << "token " << t;
    }
  }
  for (int64_t slot = 0; slot < kBlocks * kBlockSize; ++slot) {
    if (written[slot]) continue;
    for (int64_t i = 0; i < kWidth; ++i) {
      EXPECT_TRUE(std::isnan(key_cache_[At(slot, i)])) << "slot " << slot;
      EXPECT_TRUE(std::isnan(value_cache_[At(slot, i)])) << "slot " << slot;
    }
  }
}

// The layout, spelled out: [blocks, heads, block_size, dim], one head's rows of a block together.
TEST_F(KvCacheWriteTest, AHeadsRowsOfABlockAreContiguous) {
  EXPECT_EQ(KvCacheOffset(/*slot=*/0, /*head=*/0, kKvHeads, kDim, kBlockSize), 0);
  EXPECT_EQ(KvCacheOffset(1, 0, kKvHeads, kDim, kBlockSize), kDim);  // the next row of head 0
  EXPECT_EQ(KvCacheOffset(0, 1, kKvHeads, kDim, kBlockSize), kBlockSize * kDim);
  // Slot 5: block 1, row 1; head 2: after block 0 (3 heads) and block 1's heads 0 and 1.
  EXPECT_EQ(KvCacheOffset(5, 2, kKvHeads, kDim, kBlockSize), ((1 * 3 + 2) * 4 + 1) * 5);
  const std::vector<int64_t> slots = {5};
  ASSERT_TRUE(WriteKvCache(Params(slots)).ok());
  for (int64_t d = 0; d < kDim; ++d) {
    EXPECT_EQ(key_cache_[105 + d], key_[2 * kDim + d]);
    EXPECT_EQ(value_cache_[105 + d], value_[2 * kDim + d]);
  }
}

// Keys stored transposed: element d of a head's key in row r of block b at ((b * heads + head)
// * dim + d) * block_size + r, fp32 and bf16; the values keep the row layout; nothing else is
// written.
TEST_F(KvCacheWriteTest, TransposedKeysLandByDimension) {
  EXPECT_EQ(
      TransposedKeyOffset(/*block=*/1, /*row=*/1, /*head=*/2, /*d=*/3, kKvHeads, kDim, kBlockSize),
      ((1 * 3 + 2) * 5 + 3) * 4 + 1);
  const std::vector<int64_t> slots = {5, -1, 22, 0};
  KvCacheWriteParams p = Params(slots);
  p.keys_transposed = true;
  ASSERT_TRUE(WriteKvCache(p).ok());
  std::vector<bool> key_written(key_cache_.size(), false);
  for (size_t t = 0; t < slots.size(); ++t) {
    const int64_t slot = slots[t];
    if (slot < 0) continue;
    for (int64_t i = 0; i < kWidth; ++i) {
      const int64_t at = TransposedKeyOffset(slot / kBlockSize, slot % kBlockSize, i / kDim,
                                             i % kDim, kKvHeads, kDim, kBlockSize);
      EXPECT_EQ(key_cache_[at], key_[t * kKeyStride + i]) << "token " << t << " element " << i;
      key_written[at] = true;
      EXPECT_EQ(value_cache_[At(slot, i)], value_[t * kWidth + i]) << "token " << t;
    }
  }
  for (size_t at = 0; at < key_cache_.size(); ++at) {
    if (!key_written[at]) {
      EXPECT_TRUE(std::isnan(key_cache_[at])) << "element " << at;
    }
  }
  // bf16: the same places, each value rounded to nearest even.
  std::vector<uint16_t> keys(key_cache_.size(), 0xFFFF), values(key_cache_.size(), 0xFFFF);
  p.key_cache = keys.data();
  p.value_cache = values.data();
  p.cache_dtype = DType::kBF16;
  ASSERT_TRUE(WriteKvCache(p).ok());
  std::vector<uint16_t> rounded(kWidth);
  ASSERT_TRUE(Quantize({.dtype = DType::kBF16,
                        .src = key_.data() + 2 * kKeyStride,
                        .dst = rounded.data(),
                        .num_elements = kWidth})
                  .ok());
  for (int64_t i = 0; i < kWidth; ++i) {
    EXPECT_EQ(keys[TransposedKeyOffset(22 / kBlockSize, 22 % kBlockSize, i / kDim, i % kDim,
                                       kKvHeads, kDim, kBlockSize)],
              rounded[i]);
  }
  // The CUDA twin writes rows only.
  p.device = Device::kCuda;
  p.slots_checked = true;
  EXPECT_THAT(WriteKvCache(p).message(), HasSubstr("transposed"));
}

// A bfloat16 cache holds each value rounded to nearest even (Quantize's rounding); slots not
// written keep their bytes.
TEST_F(KvCacheWriteTest, ABfloat16CacheHoldsTheRoundedValues) {
  const std::vector<int64_t> slots = {5, 6, 23, -1, 0, 12, 7};
  std::vector<uint16_t> keys(kBlocks * kBlockSize * kWidth, 0xffff);
  std::vector<uint16_t> values(keys.size(), 0xffff);
  KvCacheWriteParams p = Params(slots);
  p.key_cache = keys.data();
  p.value_cache = values.data();
  p.cache_dtype = DType::kBF16;
  ASSERT_TRUE(WriteKvCache(p).ok());
  for (size_t t = 0; t < slots.size(); ++t) {
    if (slots[t] < 0) continue;
    uint16_t k[kWidth], v[kWidth];
    ASSERT_TRUE(Quantize({.dtype = DType::kBF16,
                          .src = key_.data() + t * kKeyStride,
                          .dst = k,
                          .num_elements = kWidth})
                    .ok());
    ASSERT_TRUE(Quantize({.dtype = DType::kBF16,
                          .src = value_.data() + t * kWidth,
                          .dst = v,
                          .num_elements = kWidth})
                    .ok());
    for (int64_t i = 0; i < kWidth; ++i) {
      EXPECT_EQ(keys[At(slots[t], i)], k[i]) << "token " << t;
      EXPECT_EQ(values[At(slots[t], i)], v[i]) << "token " << t;
    }
  }
  EXPECT_EQ(keys[At(1, 0)], 0xffff);  // slot 1 was not written
  p.cache_dtype = DType::kQ8_0;
  EXPECT_THAT(std::string(WriteKvCache(p).message()), HasSubstr("float32 or bfloat16"));
}

TEST_F(KvCacheWriteTest, OutOfRangeSlotIsInvalidAndWritesNothing) {
  for (int64_t bad : {kBlocks * kBlockSize, int64_t{-2}}) {
    const std::vector<int64_t> slots = {1, bad};
    const absl::Status s = WriteKvCache(Params(slots));
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(s.message()),
                HasSubstr("kv_cache_write: slot_mapping[1]=" + std::to_string(bad)));
    EXPECT_TRUE(std::isnan(key_cache_[At(1, 0)]));
  }
}

// Validate() is O(1), cheap enough for every layer; the slots are ValidateSlots()' business,
// which WriteKvCache skips for a caller that checked them once.
TEST_F(KvCacheWriteTest, SlotsAreCheckedApartFromTheCheapValidate) {
  const std::vector<int64_t> slots = {1, kBlocks * kBlockSize};
  const KvCacheWriteParams p = Params(slots);
  EXPECT_TRUE(p.Validate().ok());
  const absl::Status s = p.ValidateSlots();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("kv_cache_write: slot_mapping[1]="));
}

TEST_F(KvCacheWriteTest, SlotsCheckedByTheCallerAreWrittenTheSame) {
  const std::vector<int64_t> slots = {5, 23, -1, 0};
  KvCacheWriteParams p = Params(slots);
  p.slots_checked = true;
  ASSERT_TRUE(WriteKvCache(p).ok());
  for (size_t t = 0; t < slots.size(); ++t) {
    if (slots[t] < 0) continue;
    for (int64_t i = 0; i < kWidth; ++i) {
      EXPECT_EQ(key_cache_[At(slots[t], i)], key_[t * kKeyStride + i]) << "token " << t;
      EXPECT_EQ(value_cache_[At(slots[t], i)], value_[t * kWidth + i]) << "token " << t;
    }
  }
}

TEST_F(KvCacheWriteTest, StrideBelowPackedWidthIsInvalid) {
  const std::vector<int64_t> slots = {1};
  KvCacheWriteParams p = Params(slots);
  p.value_stride = kWidth - 1;
  const absl::Status s = WriteKvCache(p);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("value_stride"));
}

}  // namespace
}  // namespace pagoda::kernels
