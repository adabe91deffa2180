// Sampler: picks one token per sequence from a batch of logits, with vLLM V1's semantics.
//
// Per sequence, in vLLM's order: raw logprobs (log-softmax of the logits as given) → min_tokens
// (the stop tokens are masked while fewer than min_tokens were generated) and a structured
// output's token bitmask → allowed_token_ids (the others masked), bad_words (a banned sequence's
// last token masked where the outputs so far end with the rest of it) and logit_bias → penalties
// (repetition, frequency, presence) → greedy argmax, or temperature → min_p → top_k → top_p →
// an inverse-CDF draw over the kept tokens.
//
// The draw is counter-based: it depends only on (seed, step), so a sequence gets the same tokens
// whatever else shares its batch, and a request re-prefilled on another replica after a failover
// continues with the same draws. Parallel samples of one prompt (n > 1) need distinct seeds.
//
// The vocabulary-sized work runs in the kernel ops of kernels/sampling.h over the whole batch
// (each on the rows it applies to); the Sampler decides which op applies to which row.
//
// NaN logits count as -inf and +inf as the largest float (tokens at +inf share the mass). A
// sequence left with no finite logit is an InvalidArgument error for the whole call.
//
//   Sampler sampler;
//   std::vector<SamplingInput> inputs = {{.params = &params, .seed = 7, .step = 0,
//                                         .prompt_token_ids = prompt}};
//   ASSIGN_OR_RETURN(std::vector<SampleOutput> out,
//                    sampler.Sample(absl::MakeSpan(logits), /*num_seqs=*/1, vocab_size, inputs));
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/sampling_params.h"

namespace pagoda {

struct SamplingInput {
  const SamplingParams* params = nullptr;
  uint64_t seed = 0;  // resolved: the request's seed, or one the engine drew for it
  int64_t step = 0;   // tokens generated so far: this sample's position in the output
  absl::Span<const int32_t> prompt_token_ids = {};
  // The outputs this sample follows (for penalties and bad_words); a speculative verification
  // row counts the drafts before it among them.
  absl::Span<const int32_t> output_token_ids = {};
  // The model's end-of-sequence ids: masked, with params->stop_token_ids, while
  // step < params->min_tokens (EOS not when params->ignore_eos).
  absl::Span<const int32_t> eos_token_ids = {};
  // Structured output: the ids the grammar allows (bit id % 32 of word id / 32; ids past the
  // mask are not allowed); the others' logits become -inf after the raw logprobs, with the
  // min_tokens mask. Empty: unconstrained.
  absl::Span<const uint32_t> token_bitmask = {};
};

struct SampleOutput {
  int32_t token_id = 0;
  float logprob = 0.0f;  // of token_id, under the raw logits; 0 when logprobs were not asked for
  std::vector<std::pair<int32_t, float>> top_logprobs;  // params->logprobs best, descending
};

struct SamplerOptions {
  int max_threads = 0;            // threads across sequences; 0: OpenMP's default
  int64_t min_parallel_seqs = 4;  // smaller batches run on the calling thread
};

class Sampler {
 public:
  explicit Sampler(SamplerOptions options = {}) : options_(options) {}

  /// Samples one token per sequence. `logits` is [num_seqs, vocab_size] row-major and is
  /// overwritten (penalties, masks). Token ids in the inputs must lie in [0, vocab_size).
  /// The params are assumed validated (SamplingParams::Validate) at the edge.
  absl::StatusOr<std::vector<SampleOutput>> Sample(absl::Span<float> logits, int64_t num_seqs,
                                                   int64_t vocab_size,
                                                   absl::Span<const SamplingInput> inputs) const;

  /// Applies repetition, frequency and presence penalties to one row of logits, in place
  /// (kernels::ApplyPenalties). The ids must lie in [0, logits.size()): a broken invariant else.
  static void ApplyPenalties(absl::Span<float> logits, const SamplingParams& params,
                             absl::Span<const int32_t> prompt_token_ids,
                             absl::Span<const int32_t> output_token_ids);

  /// The uniform draw in [0, 1) for sample `step` of a sequence seeded with `seed`.
  static double UniformDraw(uint64_t seed, int64_t step);

 private:
  SamplerOptions options_;
};

}  // namespace pagoda
