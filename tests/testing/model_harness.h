// Runs a model end to end in tests: greedy decoding of a batch of prompts through a ModelRunner,
// on one rank or on a tensor-parallel group of threads (Gloo), so that model tests compare
// tokens and logits against their fixtures' references. Failures are gtest failures.
//
//   const Generation one = RunModel(dir + "/phi3_hf", {prompt}, /*steps=*/6);
//   const Generation two = RunModelSharded(dir + "/phi3_hf", {prompt}, 6, /*size=*/2);
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
#include "worker/tensor_parallel.h"

namespace pagoda::testing {

inline constexpr int64_t kHarnessBlockSize = 16;

/// The logits of every greedy step and the tokens they pick.
struct Generation {
  std::vector<std::vector<int32_t>> tokens;             // [seq][step]
  std::vector<std::vector<std::vector<float>>> logits;  // [seq][step][vocab]
};

/// Greedy decoding of each prompt, all sequences in one batch per step.
Generation GreedyBatch(ModelRunner& runner, const std::vector<std::vector<int32_t>>& prompts,
                       int64_t steps);

/// A runner of `num_blocks` KV blocks; max_positions 0: the config's max_position_embeddings.
std::unique_ptr<ModelRunner> MakeRunner(const ModelConfig& config, ModelWeights weights,
                                        int64_t num_blocks, const TensorParallelShard& shard = {},
                                        Communicator* comm = nullptr, int64_t max_positions = 0);

/// Opens `path` (a GGUF file or a Hugging Face directory) and greedily decodes `prompts` on one
/// rank.
Generation RunModel(const std::string& path, const std::vector<std::vector<int32_t>>& prompts,
                    int64_t steps, int64_t max_positions = 0);

/// Runs body(shard, communicator) for every rank of a group of `size`, each on its own thread
/// with a Gloo communicator; a group of one runs inline without one (as a TP-1 worker does).
void RunRanks(int32_t size,
              const std::function<void(const TensorParallelShard&, Communicator*)>& body);

/// Greedy decoding at tensor parallel size `size` (with whole experts per rank when
/// `expert_parallel`): rank 0's result, after checking that every rank got exactly the same.
Generation RunModelSharded(const std::string& path,
                           const std::vector<std::vector<int32_t>>& prompts, int64_t steps,
                           int32_t size, int64_t max_positions = 0, bool expert_parallel = false);

/// The largest |a - b| over matching rows.
float MaxAbsDiff(const std::vector<std::vector<float>>& a,
                 const std::vector<std::vector<float>>& b);

}  // namespace pagoda::testing
