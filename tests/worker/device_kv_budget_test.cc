// DeviceKvBudget: the share of the device left to the KV cache after the weights and the largest
// step, with the profiling cache counted back in.
#include "worker/device_kv_budget.h"

#include <memory>
#include <vector>

#include "gtest/gtest.h"
#include "worker/model_weights.h"

namespace pagoda {
namespace {

constexpr int64_t kGiB = int64_t{1} << 30;

TEST(DeviceKvBudget, TheRestOfTheAllowedShare) {
  // 141 GiB device, 20 GiB in use (16 of weights and activations, 4 of another process).
  const kernels::cuda::DeviceMemoryInfo now{.free_bytes = 121 * kGiB, .total_bytes = 141 * kGiB};
  EXPECT_EQ(DeviceKvBudget(now, 1.0, 0), 121 * kGiB);
  EXPECT_EQ(DeviceKvBudget(now, 0.5, 0), static_cast<int64_t>(70.5 * kGiB) - 20 * kGiB);
  // The profiling cache (1 GiB of the 20 in use) is freed before the real one is allocated.
  EXPECT_EQ(DeviceKvBudget(now, 1.0, kGiB), 122 * kGiB);
}

TEST(DeviceKvBudget, NothingWhenTheShareIsAlreadyUsed) {
  const kernels::cuda::DeviceMemoryInfo now{.free_bytes = 10 * kGiB, .total_bytes = 80 * kGiB};
  EXPECT_EQ(DeviceKvBudget(now, 0.5, 0), 0);    // 70 in use, 40 allowed
  EXPECT_EQ(DeviceKvBudget(now, 0.875, 0), 0);  // exactly used up
  EXPECT_EQ(DeviceKvBudget(now, 0.9, 0), static_cast<int64_t>(0.9 * 80 * kGiB) - 70 * kGiB);
  // A replaced cache larger than what is in use (a driver that reports oddly) never counts as
  // negative use.
  EXPECT_EQ(DeviceKvBudget(now, 0.5, 100 * kGiB), 40 * kGiB);
}

TEST(LargestStep, TheEnginesStepWithinThePositions) {
  // 4096 tokens over 256 sequences of 16.
  LargestStep step = LargestStepFor(4096, 256, 2048);
  EXPECT_EQ(step.num_seqs, 256);
  EXPECT_EQ(step.tokens_per_seq, 16);
  EXPECT_EQ(ProfileBlocks(step, 16), 256);
  // One sequence cannot pass the model's positions.
  step = LargestStepFor(8192, 1, 2048);
  EXPECT_EQ(step.num_seqs, 1);
  EXPECT_EQ(step.tokens_per_seq, 2048);
  EXPECT_EQ(ProfileBlocks(step, 16), 128);
  // More sequences than tokens: one token each.
  step = LargestStepFor(8, 256, 2048);
  EXPECT_EQ(step.num_seqs, 8);
  EXPECT_EQ(step.tokens_per_seq, 1);
  EXPECT_EQ(ProfileBlocks(step, 16), 8);
  // Unknown (an old router): one sequence of the model's positions.
  step = LargestStepFor(0, 0, 512);
  EXPECT_EQ(step.num_seqs, 1);
  EXPECT_EQ(step.tokens_per_seq, 512);
}

ModelConfig TinyConfig() {
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.vocab_size = 97;
  c.hidden_size = 48;
  c.intermediate_size = 80;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 6;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 10000.0;
  c.max_position_embeddings = 64;
  return c;
}

// The profile step runs in exactly ProfileBlocks blocks (one fewer is refused), and the cache
// can then be replaced by one of any size, which the next steps use. (On the CPU here: the same
// calls a CUDA worker makes before sizing its cache.)
TEST(LargestStep, RunsInItsBlocksThenTheCacheIsReplaced) {
  const ModelConfig config = TinyConfig();
  const LargestStep step = LargestStepFor(40, 3, config.max_position_embeddings);
  ASSERT_EQ(step.num_seqs, 3);
  ASSERT_EQ(step.tokens_per_seq, 13);
  const int64_t blocks = ProfileBlocks(step, 4);
  EXPECT_EQ(blocks, 12);
  auto small = ModelRunner::Create(config, DummyModelWeights(config, /*seed=*/3),
                                   {.num_blocks = blocks - 1, .block_size = 4});
  ASSERT_TRUE(small.ok()) << small.status();
  EXPECT_EQ(RunLargestStep(**small, step).code(), absl::StatusCode::kInvalidArgument);

  auto runner = ModelRunner::Create(config, DummyModelWeights(config, /*seed=*/3),
                                    {.num_blocks = blocks, .block_size = 4});
  ASSERT_TRUE(runner.ok()) << runner.status();
  ASSERT_TRUE(RunLargestStep(**runner, step).ok());
  const int64_t bytes_per_block = (*runner)->kv_cache().shape().bytes_per_block();
  ASSERT_TRUE((*runner)->ReallocateKvCache(40).ok());
  EXPECT_EQ((*runner)->num_blocks(), 40);
  EXPECT_EQ((*runner)->kv_cache().num_bytes(), 40 * bytes_per_block);
  // A block id the small cache did not have.
  const std::vector<int32_t> tokens = {5, 6, 7};
  const std::vector<int32_t> table = {39};
  auto logits = (*runner)->Execute(std::vector<SequenceInput>{
      {.token_ids = tokens, .num_computed_tokens = 0, .block_table = table}});
  ASSERT_TRUE(logits.ok()) << logits.status();
  EXPECT_EQ((*logits)->num_rows, 1);
  EXPECT_EQ((*runner)->ReallocateKvCache(0).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace pagoda
