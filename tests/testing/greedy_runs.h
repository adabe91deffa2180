// Greedy decoding through a ModelRunner, for the model tests (gguf_model_test, gemma_model_test):
// one batch of prompts decoded step by step, on one rank or on a tensor-parallel group of Gloo
// ranks in threads. Failures are reported through gtest (EXPECT/ASSERT) and give empty results.
//
//   const Generation one = RunModel(dir_or_gguf, {prompt}, /*steps=*/6);
//   const Generation two = RunModelSharded(dir_or_gguf, {prompt}, 6, /*size=*/2);
//   EXPECT_LE(MaxAbsDiff(two.logits[0], one.logits[0]), 1e-4f);
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
#include "worker/tensor_parallel.h"

namespace pagoda::testing {

/// The KV cache block size of these runs.
inline constexpr int64_t kGreedyBlockSize = 16;

/// The logits of every step and the tokens they pick, per prompt.
struct Generation {
  std::vector<std::vector<int32_t>> tokens;             // [seq][step]
  std::vector<std::vector<std::vector<float>>> logits;  // [seq][step][vocab]
};

/// Greedy decoding of each prompt, all sequences in one batch per step.
Generation GreedyBatch(ModelRunner& runner, const std::vector<std::vector<int32_t>>& prompts,
                       int64_t steps);

/// A runner over `weights` with `num_blocks` cache blocks; nullptr (and a failure) on error.
std::unique_ptr<ModelRunner> MakeRunner(const ModelConfig& config, ModelWeights weights,
                                        int64_t num_blocks, const TensorParallelShard& shard = {},
                                        Communicator* comm = nullptr);

/// Opens `path` (a GGUF file or a Hugging Face directory) and greedily decodes `prompts` on one
/// rank.
Generation RunModel(const std::string& path, const std::vector<std::vector<int32_t>>& prompts,
                    int64_t steps);

/// Runs body(shard, communicator) for every rank of a group of `size`, each on its own thread
/// with a Gloo communicator.
void RunRanks(int32_t size,
              const std::function<void(const TensorParallelShard&, Communicator*)>& body);

/// Greedy decoding at tensor parallel size `size`; rank 0's result after checking that every
/// rank got exactly the same logits.
Generation RunModelSharded(const std::string& path,
                           const std::vector<std::vector<int32_t>>& prompts, int64_t steps,
                           int32_t size);

/// The largest |a - b| over rows of equal sizes (a size mismatch fails the test).
float MaxAbsDiff(const std::vector<std::vector<float>>& a,
                 const std::vector<std::vector<float>>& b);

}  // namespace pagoda::testing
