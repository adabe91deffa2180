// StopRules: when a sampled token ends a sequence, by the tokens alone — in one place for all who
// apply it: the engine's Scheduler (which finishes the sequence) and StopChecker, the worker's
// multi-step loop (which stops feeding a sequence's samples to the next pass) and the
// SimulatedExecutor. They must agree: a worker that stops early leaves the engine waiting for
// tokens that never come; one that samples on computes tokens the engine throws away.
//
// After a sequence appends output token `token`, so that it holds num_output_tokens outputs and
// total_len tokens in all:
//   - a stop token ends it ("stop"): an EOS id unless ignore_eos, or one of stop_token_ids —
//     only once num_output_tokens >= min_tokens;
//   - otherwise max_tokens outputs, or max_model_len tokens in all (when given), end it
//     ("length").
// Stop strings need the text, so they stay with the engine's StopChecker.
//
//   const StopRules rules(seq.params, eos_token_ids, max_model_len);
//   seq.token_ids.push_back(token);
//   const TokenStop stop = rules.Check(token, seq.num_output_tokens(), seq.token_ids.size());
//   if (EndsOnToken(stop)) { finish "stop" } else if (stop == TokenStop::kLength) { "length" }
//
// A view: the id lists it was built from must outlive it. Building one costs nothing, so build
// it where it is used.
#pragma once

#include <cstdint>

#include "absl/types/span.h"
#include "common/sampling_params.h"

namespace pagoda {

/// What the token-level rules decide after a sequence appended an output token.
enum class TokenStop {
  kNone,         // it goes on
  kEos,          // an EOS id (unless ignore_eos) ended it
  kStopTokenId,  // one of stop_token_ids (and no EOS id) ended it
  kLength,       // max_tokens outputs or max_model_len tokens ended it
};

/// Whether the token itself ended the sequence (finish reason "stop").
constexpr bool EndsOnToken(TokenStop stop) {
  return stop == TokenStop::kEos || stop == TokenStop::kStopTokenId;
}

class StopRules {
 public:
  /// The rules of a request. `eos_token_ids`: the model's and the tokenizer's end-of-sequence
  /// ids. `max_model_len`: prompt + output tokens; 0 leaves length to max_tokens alone.
  StopRules(const SamplingParams& params, absl::Span<const int32_t> eos_token_ids,
            int64_t max_model_len = 0)
      : StopRules(params.stop_token_ids, eos_token_ids, params.ignore_eos, params.min_tokens,
                  params.max_tokens, max_model_len) {}
  StopRules(absl::Span<const int32_t> stop_token_ids, absl::Span<const int32_t> eos_token_ids,
            bool ignore_eos, int64_t min_tokens, int64_t max_tokens, int64_t max_model_len = 0)
      : stop_token_ids_(stop_token_ids),
        eos_token_ids_(eos_token_ids),
        ignore_eos_(ignore_eos),
        min_tokens_(min_tokens),
        max_tokens_(max_tokens),
        max_model_len_(max_model_len) {}

  /// The decision after a sequence appended output `token`, then holding num_output_tokens
  /// outputs and total_len tokens.
  TokenStop Check(int32_t token, int64_t num_output_tokens, int64_t total_len) const;

  /// kEos or kStopTokenId when `token` is a stop token, else kNone, whatever the output count
  /// (min_tokens is the caller's then). EOS wins when the token is both.
  TokenStop StopTokenKind(int32_t token) const;

  /// Outputs a sequence with num_output_tokens outputs and total_len tokens may still produce
  /// before length ends it (<= 0: none).
  int64_t NumOutputsLeft(int64_t num_output_tokens, int64_t total_len) const;

 private:
  absl::Span<const int32_t> stop_token_ids_;
  absl::Span<const int32_t> eos_token_ids_;
  bool ignore_eos_;
  int64_t min_tokens_;
  int64_t max_tokens_;
  int64_t max_model_len_;  // 0: no limit
};

}  // namespace pagoda
