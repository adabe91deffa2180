// OfflineGenerator: runs a list of requests to completion through one ModelRunner over the
// paged KV cache — the path behind `pagoda generate` until the engine core (continuous
// batching, prefix caching, preemption) drives it.
//
// Scheduling is static batching: a wave admits requests in order while their worst-case blocks
// (prompt + max_tokens) fit the cache, runs until every request of the wave has finished, then
// admits the next wave. Within a step, prompt tokens are packed up to a token budget (long
// prompts are chunked) beside one decode token per running request, with no padding.
//
//   OfflineGenerator generator(runner.get(), tokenizer.get(), {.max_num_batched_tokens = 4096});
//   ASSIGN_OR_RETURN(std::vector<GenerationResult> results, generator.Generate(requests));
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/sampling_params.h"
#include "common/tokenizer/tokenizer.h"
#include "engine/finish_reason.h"
#include "worker/model_runner.h"
#include "worker/sampler.h"

namespace pagoda {

struct GenerationRequest {
  std::string prompt;                     // used when prompt_token_ids is empty
  std::vector<int32_t> prompt_token_ids;  // already tokenized (BOS included)
  SamplingParams params;
  uint64_t seed = 0;  // resolved seed: params.seed or one drawn by the caller
};

// FinishReason (kStop | kLength here) and FinishReasonName come from the engine core.

struct GenerationResult {
  std::string prompt;
  std::vector<int32_t> prompt_token_ids;
  std::vector<int32_t> token_ids;
  std::string text;
  FinishReason finish_reason = FinishReason::kLength;
  std::vector<float> logprobs;  // sampled token logprobs, when params.logprobs >= 0
  std::vector<std::vector<std::pair<int32_t, float>>> top_logprobs;
};

struct OfflineGeneratorOptions {
  int64_t max_num_batched_tokens = 4096;  // new tokens per step, all sequences together
  int64_t max_num_seqs = 256;             // sequences per wave
};

class OfflineGenerator {
 public:
  OfflineGenerator(ModelRunner* runner, const Tokenizer* tokenizer,
                   const OfflineGeneratorOptions& options);

  /// Tokenizes prompts, validates every request (params, prompt + max_tokens within the
  /// model's positions and the KV cache) before running any, then generates. Results are in
  /// request order.
  absl::StatusOr<std::vector<GenerationResult>> Generate(std::vector<GenerationRequest> requests);

 private:
  struct Active;
  absl::Status RunWave(std::vector<Active>& wave);
  bool IsStopToken(const SamplingParams& params, int32_t token) const;

  ModelRunner* runner_;
  const Tokenizer* tokenizer_;
  OfflineGeneratorOptions options_;
  Sampler sampler_;
  std::vector<int32_t> eos_token_ids_;  // config.json's and the tokenizer's
};

}  // namespace pagoda
