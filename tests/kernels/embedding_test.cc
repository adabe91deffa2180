#include "kernels/embedding.h"

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

constexpr int64_t kVocab = 53;
constexpr int64_t kHidden = 77;

TEST(Embedding, CopiesTheRowOfEachId) {
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> table(kVocab * kHidden);
  for (float& x : table) x = uniform(rng);
  const std::vector<int32_t> ids = {0, 52, 7, 7, 31, 1, 52};
  std::vector<float> out(ids.size() * kHidden, std::numeric_limits<float>::quiet_NaN());
  ASSERT_TRUE(Embedding({.token_ids = ids.data(),
                         .table = table.data(),
                         .output = out.data(),
                         .num_tokens = static_cast<int64_t>(ids.size()),
                         .vocab_size = kVocab,
                         .hidden_size = kHidden})
                  .ok());
  for (size_t t = 0; t < ids.size(); ++t) {
    for (int64_t i = 0; i < kHidden; ++i) {
      ASSERT_EQ(out[t * kHidden + i], table[ids[t] * kHidden + i]) << "token " << t;
    }
  }
}

// A quantized table's rows are dequantized as they are read (SmolLM2's GGUF embedding is Q8_0).
TEST(Embedding, DequantizesTheRowsOfAQuantizedTable) {
  constexpr int64_t kVocabQ = 11, kHiddenQ = 512;
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> values(kVocabQ * kHiddenQ);
  for (float& x : values) x = uniform(rng);
  for (DType dtype : {DType::kBF16, DType::kQ8_0}) {
    const DTypeTraits& t = Traits(dtype);
    std::vector<uint8_t> table(kVocabQ * kHiddenQ / t.block_elements * t.block_bytes);
    ASSERT_TRUE(Quantize({.dtype = dtype,
                          .src = values.data(),
                          .dst = table.data(),
                          .num_elements = kVocabQ * kHiddenQ})
                    .ok());
    std::vector<float> dequantized(values.size());
    ASSERT_TRUE(Dequantize({.dtype = dtype,
                            .src = table.data(),
                            .dst = dequantized.data(),
                            .num_elements = kVocabQ * kHiddenQ})
                    .ok());
    const std::vector<int32_t> ids = {10, 0, 3, 3};
    std::vector<float> out(ids.size() * kHiddenQ, std::numeric_limits<float>::quiet_NaN());
    ASSERT_TRUE(Embedding({.token_ids = ids.data(),
                           .table = table.data(),
                           .table_dtype = dtype,
                           .output = out.data(),
                           .num_tokens = static_cast<int64_t>(ids.size()),
                           .vocab_size = kVocabQ,
                           .hidden_size = kHiddenQ})
                    .ok());
    for (size_t i = 0; i < ids.size(); ++i) {
      for (int64_t j = 0; j < kHiddenQ; ++j) {
        ASSERT_EQ(out[i * kHiddenQ + j], dequantized[ids[i] * kHiddenQ + j])
            << DTypeName(dtype) << " token " << i;
      }
    }
  }
  const std::vector<uint8_t> table(64);
  float out[48];
  const int32_t id = 0;
  EXPECT_THAT(std::string(Embedding({.token_ids = &id,
                                     .table = table.data(),
                                     .table_dtype = DType::kQ8_0,
                                     .output = out,
                                     .num_tokens = 1,
                                     .vocab_size = 1,
                                     .hidden_size = 48})
                              .message()),
              HasSubstr("hidden_size=48 is not a whole number of 32-element q8_0 blocks"));
}

TEST(Embedding, OutOfRangeIdIsInvalidAndWritesNothing) {
  std::vector<float> table(kVocab * kHidden, 1.0f);
  for (int32_t bad : {static_cast<int32_t>(kVocab), -1}) {
    const std::vector<int32_t> ids = {3, bad};
    std::vector<float> out(ids.size() * kHidden, 0.0f);
    const absl::Status s = Embedding({.token_ids = ids.data(),
                                      .table = table.data(),
                                      .output = out.data(),
                                      .num_tokens = 2,
                                      .vocab_size = kVocab,
                                      .hidden_size = kHidden});
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(s.message()),
                HasSubstr("embedding: token_ids[1]=" + std::to_string(bad)));
    EXPECT_EQ(out, std::vector<float>(ids.size() * kHidden, 0.0f));
  }
}

// Validate() is O(1); the ids are ValidateTokenIds()' business, which Embedding skips for a
// caller that checked them once.
TEST(Embedding, TokenIdsAreCheckedApartFromTheCheapValidate) {
  std::vector<float> table(kVocab * kHidden, 1.0f);
  const std::vector<int32_t> ids = {3, static_cast<int32_t>(kVocab)};
  std::vector<float> out(ids.size() * kHidden);
  const EmbeddingParams p{.token_ids = ids.data(),
                          .table = table.data(),
                          .output = out.data(),
                          .num_tokens = 2,
                          .vocab_size = kVocab,
                          .hidden_size = kHidden};
  EXPECT_TRUE(p.Validate().ok());
  EXPECT_THAT(std::string(p.ValidateTokenIds().message()), HasSubstr("embedding: token_ids[1]="));
}

TEST(Embedding, TokenIdsCheckedByTheCallerAreLookedUpTheSame) {
  std::vector<float> table(kVocab * kHidden);
  for (size_t i = 0; i < table.size(); ++i) table[i] = static_cast<float>(i);
  const std::vector<int32_t> ids = {52, 0, 9};
  std::vector<float> out(ids.size() * kHidden);
  ASSERT_TRUE(Embedding({.token_ids = ids.data(),
                         .table = table.data(),
                         .output = out.data(),
                         .num_tokens = 3,
                         .vocab_size = kVocab,
                         .hidden_size = kHidden,
                         .token_ids_checked = true})
                  .ok());
  for (size_t t = 0; t < ids.size(); ++t) {
    EXPECT_EQ(out[t * kHidden], table[ids[t] * kHidden]) << "token " << t;
    EXPECT_EQ(out[t * kHidden + kHidden - 1], table[ids[t] * kHidden + kHidden - 1]);
  }
}

TEST(Embedding, RejectsBadShape) {
  const absl::Status s = Embedding({.num_tokens = 1, .vocab_size = 0, .hidden_size = 4});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("vocab_size=0"));
}

}  // namespace
}  // namespace pagoda::kernels
