// What the host Sampler (worker/sampler.h) and the DeviceSampler (worker/device_sampler.h) share:
// a batch's per-row sampling settings gathered once, in the arrays the kernel ops of
// kernels/sampling.h take, and the errors both report.
//
//   const internal::SamplingSettings settings(inputs, vocab_size);
//   RETURN_IF_ERROR(kernels::ApplyPenalties({..., .repetition_penalty = settings.repetition.data(),
//                                            ...}));
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "kernels/sampling.h"
#include "worker/sampler.h"

namespace pagoda::internal {

/// InvalidArgument "no finite logit left <when>".
absl::Status NoFiniteLogit(const char* when);

/// InvalidArgument naming the first id outside [0, vocab_size) as "<what> token id ...".
absl::Status CheckTokenIds(absl::Span<const int32_t> ids, int64_t vocab_size, const char* what);

/// Token id lists of the rows as the kernels take them: offsets [num_seqs + 1] into one array.
/// Set(s, ...) is called for every row, in ascending order.
struct TokenLists {
  explicit TokenLists(int64_t num_seqs) { offsets.reserve(static_cast<size_t>(num_seqs) + 1); }
  void Set(int64_t s, absl::Span<const int32_t> a = {}, absl::Span<const int32_t> b = {});

  std::vector<int64_t> offsets = {0};
  std::vector<int32_t> ids;
};

/// The rows of the batch an op runs on (an empty list still needs a pointer: null means all).
kernels::SamplingRows Rows(const kernels::SamplingRows& all, const std::vector<int32_t>& rows);

/// Every row's settings (O(num_seqs) plus the token lists), from inputs with params set.
struct SamplingSettings {
  SamplingSettings(absl::Span<const SamplingInput> inputs, int64_t vocab_size);

  /// min_tokens: the stop tokens (and EOS unless ignore_eos) of the rows still below it.
  TokenLists masked;
  /// Penalties: the rows that have any, over token ids checked here so that a bad one fails its
  /// row only (penalty_statuses; such a row is not penalized).
  std::vector<absl::Status> penalty_statuses;
  std::vector<char> penalize;
  TokenLists prompts;         // repetition penalty only
  TokenLists outputs_so_far;  // all three
  std::vector<float> repetition, frequency, presence;
  /// Random rows' settings (greedy rows keep the neutral ones) and draws.
  std::vector<float> temperature, min_p, top_p;
  std::vector<int32_t> top_k;
  std::vector<double> uniform;
  /// Top logprobs asked for per row, and their maximum.
  std::vector<int32_t> top_logprobs_k;
  int64_t max_top_logprobs = 0;
};

}  // namespace pagoda::internal
