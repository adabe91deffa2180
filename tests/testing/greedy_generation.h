// Greedy decoding through ModelRunner for model tests: one rank, or a tensor-parallel group of
// threads with Gloo communicators (every rank must produce exactly the same logits). Failures are
// gtest failures; the result is then empty.
//
//   Generation one = testing::RunModel(dir, {prompt}, /*steps=*/6);
//   Generation two = testing::RunModelSharded(dir, {prompt}, 6, /*size=*/2);
//   EXPECT_EQ(two.tokens, one.tokens);
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/model_config.h"
#include "worker/communicator.h"
#include "worker/model_runner.h"
#include "worker/model_weights.h"

namespace pagoda::testing {

inline constexpr int64_t kGenerationBlockSize = 16;

// The logits of every step and the tokens they pick, per sequence.
struct Generation {
  std::vector<std::vector<int32_t>> tokens;             // [seq][step]
  std::vector<std::vector<std::vector<float>>> logits;  // [seq][step][vocab]
};

/// Greedy decoding of each prompt, all sequences in one batch per step.
Generation GreedyBatch(ModelRunner& runner, const std::vector<std::vector<int32_t>>& prompts,
                       int64_t steps);

/// A runner of `num_blocks` KV blocks of kGenerationBlockSize tokens (nullptr after a failure).
std::unique_ptr<ModelRunner> MakeRunner(const ModelConfig& config, ModelWeights weights,
                                        int64_t num_blocks, const TensorParallelShard& shard = {},
                                        Communicator* comm = nullptr);

/// Opens `path` (a GGUF file or a Hugging Face directory) and greedily decodes on one rank.
Generation RunModel(const std::string& path, const std::vector<std::vector<int32_t>>& prompts,
                    int64_t steps);

/// Runs body(shard, communicator) for every rank of a group of `size`, each on its own thread.
void RunRanks(int32_t size,
              const std::function<void(const TensorParallelShard&, Communicator*)>& body);

/// Greedy decoding at tensor parallel size `size`; rank 0's result after checking every rank got
/// exactly the same.
Generation RunModelSharded(const std::string& path,
                           const std::vector<std::vector<int32_t>>& prompts, int64_t steps,
                           int32_t size);

/// The largest |a - b| over rows of equal length (a gtest failure where the sizes differ).
float MaxAbsDiff(const std::vector<std::vector<float>>& a,
                 const std::vector<std::vector<float>>& b);

}  // namespace pagoda::testing
