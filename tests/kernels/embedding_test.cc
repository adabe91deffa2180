#include "kernels/embedding.h"

#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

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

TEST(Embedding, RejectsBadShape) {
  const absl::Status s = Embedding({.num_tokens = 1, .vocab_size = 0, .hidden_size = 4});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("vocab_size=0"));
}

}  // namespace
}  // namespace pagoda::kernels
