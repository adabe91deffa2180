// The vocabulary-sized loops of sampling, as ops over a [num_seqs, vocab_size] batch of logits
// (the worker's Sampler keeps the per-request policy: which op applies to which row, in vLLM V1's
// order, with which seed). Each op works on the rows that `SamplingRows` selects, with per-row
// settings indexed by batch row; a row's result never depends on the other rows.
//
//   SanitizeLogits   NaN -> -inf, +inf -> the largest float; each row's maximum
//   LogSoftmax       logprobs of the sanitized rows (vLLM's raw logprobs)
//   TopK             the k best (id, value) of each row, lowest id first on ties
//   MaskTokens       listed token ids -> -inf (min_tokens: stop and EOS ids)
//   ApplyTokenBitmask  ids whose bit is clear -> -inf (structured output: a grammar's mask)
//   ApplyPenalties   repetition, frequency and presence penalties (vLLM's definitions)
//   Argmax           the first id of each row's maximum (greedy)
//   SoftmaxWeights   in place: exp((x - max) / temperature), 0 below min_p (max's weight is 1)
//   SampleFromWeights  top_k, then top_p, then an inverse-CDF draw at a given uniform
//
//   const kernels::SamplingRows all{.num_seqs = n, .vocab_size = v, .num_rows = n};
//   RETURN_IF_ERROR(kernels::SanitizeLogits({.batch = all, .logits = x, .row_max = max}));
//   RETURN_IF_ERROR(kernels::Argmax({.batch = all, .logits = x, .token_ids = ids}));
#pragma once

#include <cstdint>
#include <string_view>

#include "absl/status/status.h"
#include "kernels/device.h"

namespace pagoda::kernels {

/// The rows of a [num_seqs, vocab_size] batch an op works on, and its threads.
struct SamplingRows {
  int64_t num_seqs = 0;
  int64_t vocab_size = 0;         // in [1, 2^31 - 1]: token ids are int32
  const int32_t* rows = nullptr;  // [num_rows], strictly ascending in [0, num_seqs); null: all
  int64_t num_rows = 0;           // == num_seqs when rows is null
  int max_threads = 0;            // threads across rows: 0 OpenMP's default, 1 the calling thread
  /// Device::kCuda: the vocabulary-sized arrays and the per-row outputs are on the device; `rows`
  /// and the per-row settings stay on the host (kernels/cuda/sampling.h says which is which).
  Device device = Device::kCpu;

  int64_t row(int64_t i) const { return rows == nullptr ? i : rows[i]; }
  /// O(num_rows): the shape, and the rows ascending and in range. `op` prefixes the message.
  absl::Status Validate(std::string_view op) const;
};

struct SanitizeLogitsParams {
  SamplingRows batch;
  float* logits = nullptr;   // [num_seqs, vocab_size], sanitized in place
  float* row_max = nullptr;  // [num_seqs]: each selected row's new maximum (-inf: no finite logit)

  absl::Status Validate() const;
};

struct LogSoftmaxParams {
  SamplingRows batch;
  const float* logits = nullptr;   // [num_seqs, vocab_size], sanitized (no NaN, no +inf)
  const float* row_max = nullptr;  // [num_seqs]: each selected row's maximum, finite
  float* logprobs = nullptr;       // [num_rows, vocab_size]: row i of it is batch row row(i)

  absl::Status Validate() const;
};

struct TopKParams {
  SamplingRows batch;
  const float* values = nullptr;  // [num_seqs, vocab_size]
  const int32_t* k = nullptr;     // [num_seqs], in [0, max_k]; a row keeps min(k, vocab_size)
  int64_t max_k = 0;              // >= 0
  int32_t* top_ids = nullptr;     // [num_seqs, max_k]: best first
  float* top_values = nullptr;    // [num_seqs, max_k]

  absl::Status Validate() const;
};

struct MaskTokensParams {
  SamplingRows batch;
  float* logits = nullptr;             // [num_seqs, vocab_size]
  const int64_t* offsets = nullptr;    // [num_seqs + 1], non-decreasing, offsets[0] == 0
  const int32_t* token_ids = nullptr;  // [offsets[num_seqs]]: row s masks ids
                                       // [offsets[s], offsets[s + 1]); ids outside the vocabulary
                                       // are ignored (a stop id of another model's vocabulary)
  absl::Status Validate() const;
};

struct TokenBitmaskParams {
  SamplingRows batch;
  float* logits = nullptr;            // [num_seqs, vocab_size]
  const uint32_t* bitmask = nullptr;  // [num_rows, bitmask_words]: row i is batch row row(i);
                                      // bit (id % 32) of word id / 32 allows id
  int64_t bitmask_words = 0;          // >= 1; ids from bitmask_words * 32 on are never allowed

  absl::Status Validate() const;
};

struct PenaltiesParams {
  SamplingRows batch;
  float* logits = nullptr;                    // [num_seqs, vocab_size]
  const float* repetition_penalty = nullptr;  // [num_seqs], > 0; 1: none
  const float* frequency_penalty = nullptr;   // [num_seqs]; 0: none
  const float* presence_penalty = nullptr;    // [num_seqs]; 0: none
  const int64_t* prompt_offsets = nullptr;    // [num_seqs + 1], as MaskTokensParams::offsets
  const int32_t* prompt_token_ids = nullptr;  // [prompt_offsets[num_seqs]]: repetition only
  const int64_t* output_offsets = nullptr;    // [num_seqs + 1]
  const int32_t* output_token_ids = nullptr;  // [output_offsets[num_seqs]]: all three
  /// The caller checked the selected rows' token ids against vocab_size: ApplyPenalties then
  /// skips ValidateTokenIds().
  bool token_ids_checked = false;

  /// O(num_rows): shapes, pointers, offsets and penalties.
  absl::Status Validate() const;
  /// O(token ids): every id of a selected row is in [0, vocab_size). Call after Validate().
  absl::Status ValidateTokenIds() const;
};

struct ArgmaxParams {
  SamplingRows batch;
  const float* logits = nullptr;  // [num_seqs, vocab_size], no NaN
  int32_t* token_ids = nullptr;   // [num_seqs]: the first id holding the row's maximum

  absl::Status Validate() const;
};

struct SoftmaxWeightsParams {
  SamplingRows batch;
  float* logits = nullptr;             // [num_seqs, vocab_size], no NaN: becomes the weights
  const float* temperature = nullptr;  // [num_seqs], finite and > 0
  const float* min_p = nullptr;        // [num_seqs], in [0, 1]: weight < min_p becomes 0
  float* row_max = nullptr;  // [num_seqs]: the logits' maximum (-inf: no finite logit; the row's
                             // weights are then all 0)
  absl::Status Validate() const;
};

struct SampleFromWeightsParams {
  SamplingRows batch;
  const float* weights = nullptr;   // [num_seqs, vocab_size], >= 0, each row with one > 0
  const int32_t* top_k = nullptr;   // [num_seqs]: keep the k heaviest; <= 0 or >= vocab_size: all
  const float* top_p = nullptr;     // [num_seqs], in (0, 1]: then the smallest heaviest-first
                                    // prefix holding top_p of the kept weight; 1: all
  const double* uniform = nullptr;  // [num_seqs], in [0, 1): the draw
  int32_t* token_ids = nullptr;     // [num_seqs]: the first kept token whose running weight
                                    // passes uniform * total, in the order the filters leave

  absl::Status Validate() const;
};

/// Each op: Validate() (and ValidateTokenIds() where not checked), then the CPU or CUDA twin.
absl::Status SanitizeLogits(const SanitizeLogitsParams& params);
absl::Status LogSoftmax(const LogSoftmaxParams& params);
absl::Status TopK(const TopKParams& params);
absl::Status MaskTokens(const MaskTokensParams& params);
absl::Status ApplyTokenBitmask(const TokenBitmaskParams& params);
absl::Status ApplyPenalties(const PenaltiesParams& params);
absl::Status Argmax(const ArgmaxParams& params);
absl::Status SoftmaxWeights(const SoftmaxWeightsParams& params);
absl::Status SampleFromWeights(const SampleFromWeightsParams& params);

}  // namespace pagoda::kernels
