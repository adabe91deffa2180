#include "worker/tensor_parallel.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagoda {
namespace {

using ::testing::HasSubstr;

ModelConfig Config(int64_t heads, int64_t kv_heads, int64_t intermediate, int64_t vocab) {
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.vocab_size = vocab;
  c.head_dim = 8;
  c.hidden_size = heads * c.head_dim;
  c.intermediate_size = intermediate;
  c.num_hidden_layers = 2;
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv_heads;
  return c;
}

ShardLayout Layout(const ModelConfig& config, int32_t rank, int32_t size) {
  absl::StatusOr<ShardLayout> layout = ComputeShardLayout(config, {.rank = rank, .size = size});
  EXPECT_TRUE(layout.ok()) << layout.status();
  return layout.value_or(ShardLayout{});
}

void ExpectInvalid(const ModelConfig& config, TensorParallelShard shard, const std::string& text) {
  const absl::Status status = ValidateTensorParallel(config, shard);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(text));
  EXPECT_EQ(ComputeShardLayout(config, shard).status(), status);
}

TEST(ShardLayout, SizeOneHoldsTheWholeModel) {
  const ModelConfig config = Config(6, 2, 80, 97);
  const ShardLayout l = Layout(config, 0, 1);
  EXPECT_EQ(l.num_heads, 6);
  EXPECT_EQ(l.head_begin, 0);
  EXPECT_EQ(l.num_kv_heads, 2);
  EXPECT_EQ(l.kv_head_begin, 0);
  EXPECT_EQ(l.intermediate_size, 80);
  EXPECT_EQ(l.vocab_rows, 97);
  EXPECT_EQ(l.vocab_valid_rows, 97);
  EXPECT_TRUE(l.holds_o_bias);
  EXPECT_EQ(l.q_size(), config.q_size());
  EXPECT_EQ(l.qkv_width(), config.q_size() + 2 * config.kv_size());
}

TEST(ShardLayout, SplitsHeadsKvHeadsAndMlpEvenly) {
  const ModelConfig config = Config(8, 4, 172, 512);
  for (int32_t rank = 0; rank < 4; ++rank) {
    const ShardLayout l = Layout(config, rank, 4);
    EXPECT_EQ(l.num_heads, 2);
    EXPECT_EQ(l.head_begin, 2 * rank);
    EXPECT_EQ(l.num_kv_heads, 1);
    EXPECT_EQ(l.kv_head_begin, rank);
    EXPECT_EQ(l.intermediate_size, 43);
    EXPECT_EQ(l.intermediate_begin, 43 * rank);
    EXPECT_EQ(l.vocab_rows, 128);
    EXPECT_EQ(l.vocab_begin, 128 * rank);
    EXPECT_EQ(l.vocab_valid_rows, 128);
    EXPECT_EQ(l.holds_o_bias, rank == 0);
    EXPECT_EQ(l.q_size(), 16);
    EXPECT_EQ(l.kv_size(), 8);
    EXPECT_EQ(l.qkv_width(), 32);
  }
  const ShardLayout half = Layout(config, 1, 2);
  EXPECT_EQ(half.num_heads, 4);
  EXPECT_EQ(half.head_begin, 4);
  EXPECT_EQ(half.num_kv_heads, 2);
  EXPECT_EQ(half.kv_head_begin, 2);
}

TEST(ShardLayout, ReplicatesTheKvHeadOfEachRanksQueryHeads) {
  // 8 q heads in 2 GQA groups of 4; 4 ranks of 2 q heads: ranks 0, 1 use KV head 0, ranks 2, 3
  // KV head 1.
  const ModelConfig config = Config(8, 2, 64, 100);
  for (int32_t rank = 0; rank < 4; ++rank) {
    const ShardLayout l = Layout(config, rank, 4);
    EXPECT_EQ(l.num_heads, 2);
    EXPECT_EQ(l.num_kv_heads, 1);
    EXPECT_EQ(l.kv_head_begin, rank / 2);
    // Every local q head belongs to the local KV head's group.
    for (int64_t h = l.head_begin; h < l.head_begin + l.num_heads; ++h) {
      EXPECT_EQ(h / (config.num_attention_heads / config.num_key_value_heads), l.kv_head_begin);
    }
  }
  // One KV head (MQA) over 8 ranks.
  const ModelConfig mqa = Config(8, 1, 64, 100);
  for (int32_t rank = 0; rank < 8; ++rank) {
    EXPECT_EQ(Layout(mqa, rank, 8).kv_head_begin, 0);
    EXPECT_EQ(Layout(mqa, rank, 8).num_heads, 1);
  }
}

TEST(ShardLayout, PadsTheVocabularyToAMultipleOfTheSize) {
  // 97 = 4 * 25 - 3: ranks hold 25 rows each, the last one 22 real rows and 3 of padding.
  const ModelConfig config = Config(4, 4, 64, 97);
  int64_t total_valid = 0;
  for (int32_t rank = 0; rank < 4; ++rank) {
    const ShardLayout l = Layout(config, rank, 4);
    EXPECT_EQ(l.vocab_rows, 25);
    EXPECT_EQ(l.vocab_begin, 25 * rank);
    EXPECT_EQ(l.vocab_valid_rows, rank < 3 ? 25 : 22);
    total_valid += l.vocab_valid_rows;
  }
  EXPECT_EQ(total_valid, 97);
  // A vocabulary smaller than the group leaves whole ranks as padding.
  const ModelConfig tiny = Config(4, 4, 64, 2);
  EXPECT_EQ(Layout(tiny, 0, 4).vocab_valid_rows, 1);
  EXPECT_EQ(Layout(tiny, 1, 4).vocab_valid_rows, 1);
  EXPECT_EQ(Layout(tiny, 2, 4).vocab_valid_rows, 0);
  EXPECT_EQ(Layout(tiny, 3, 4).vocab_valid_rows, 0);
}

TEST(ValidateTensorParallel, RejectsEachIndivisibleField) {
  ExpectInvalid(Config(6, 6, 64, 97), {.rank = 0, .size = 4},
                "num_attention_heads (6) is not divisible by the tensor parallel size 4");
  ExpectInvalid(Config(12, 6, 64, 97), {.rank = 0, .size = 4},
                "num_key_value_heads (6) is neither divisible by nor a divisor of the tensor "
                "parallel size 4");
  ExpectInvalid(Config(8, 3, 64, 97), {.rank = 0, .size = 2}, "num_key_value_heads (3)");
  ExpectInvalid(Config(8, 4, 70, 97), {.rank = 0, .size = 4},
                "intermediate_size (70) is not divisible by the tensor parallel size 4");
  // A vocabulary of any size is padded, never rejected.
  EXPECT_TRUE(ValidateTensorParallel(Config(8, 4, 64, 97), {.rank = 3, .size = 4}).ok());
  EXPECT_TRUE(ValidateTensorParallel(Config(8, 2, 64, 97), {.rank = 3, .size = 8}).ok());
}

TEST(ValidateTensorParallel, RejectsMalformedShards) {
  const ModelConfig config = Config(8, 4, 64, 97);
  ExpectInvalid(config, {.rank = 0, .size = 0}, "tensor parallel size must be at least 1, got 0");
  ExpectInvalid(config, {.rank = 2, .size = 2}, "tensor parallel rank 2 is outside [0, 2)");
  ExpectInvalid(config, {.rank = -1, .size = 2}, "tensor parallel rank -1 is outside [0, 2)");
}

}  // namespace
}  // namespace pagoda
