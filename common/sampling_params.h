// Per-request sampling parameters, with vLLM's (and the OpenAI API's) names, defaults and bounds.
// The Sampler reads the sampling fields; the engine reads the stopping fields (max_tokens,
// min_tokens, ignore_eos, stop_token_ids), which are plain data here.
//
//   ASSIGN_OR_RETURN(SamplingParams params, SamplingParams::FromJson(line["sampling"]));
//   RETURN_IF_ERROR(params.Validate());
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json_fwd.hpp"

namespace pagoda {

struct SamplingParams {
  /// Most alternatives a request may ask for per token (vLLM's default max_logprobs).
  static constexpr int32_t kMaxLogprobs = 20;
  /// Temperatures below this sample greedily (vLLM's _SAMPLING_EPS).
  static constexpr float kGreedyTemperature = 1e-5f;
  /// Bounds on stop strings: the engine holds back up to the longest one's length while
  /// streaming and matches every one against each token's text.
  static constexpr size_t kMaxStopStrings = 16;
  static constexpr size_t kMaxStopStringBytes = 256;

  float temperature = 1.0f;  // 0: greedy (argmax, lowest id on ties)
  int32_t top_k = 0;         // 0 or -1: disabled
  float top_p = 1.0f;        // keep the smallest prefix whose probability mass reaches top_p
  float min_p = 0.0f;        // keep tokens with prob >= min_p * (max prob)
  // HF/vLLM: over prompt and output tokens, a positive logit is divided, a negative multiplied.
  float repetition_penalty = 1.0f;
  // OpenAI/vLLM: over output tokens, logit -= frequency * count + presence * (count > 0).
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  // Unset: the engine draws one per request (and keeps it, so a failover replays the same draws).
  std::optional<uint64_t> seed;
  // -1: none; 0: the sampled token's logprob; k: also the k most likely alternatives.
  int32_t logprobs = -1;

  // Stopping, applied by the engine. min_tokens also suppresses the stop tokens in the Sampler.
  int32_t max_tokens = 16;
  int32_t min_tokens = 0;
  bool ignore_eos = false;
  std::vector<int32_t> stop_token_ids;
  // OpenAI "stop": matched on the output text; the text ends before the match unless
  // include_stop_str_in_output.
  std::vector<std::string> stop;
  bool include_stop_str_in_output = false;
  bool skip_special_tokens = true;  // detokenization leaves special tokens (BOS, EOS) out
  // Speculative decoding (--speculative-config) skips this request: no proposals, no
  // verification rows, its steps pipelined as without speculation. Outputs are the same either
  // way; a latency-sensitive request at a large batch, or one known not to repeat, opts out.
  bool disable_speculative_decoding = false;
  // OpenAI's logit_bias: (token id, bias in [-100, 100]) pairs, sorted by id, each id once; the
  // bias is added to the token's logit after the raw logprobs, with the masks (vLLM's order).
  static constexpr size_t kMaxLogitBias = 1024;
  std::vector<std::pair<int32_t, float>> logit_bias;
  // vLLM's allowed_token_ids: when not empty, only these ids may be sampled (the others'
  // logits become -inf with the masks). Sorted, each id once.
  static constexpr size_t kMaxAllowedTokenIds = size_t{1} << 20;
  std::vector<int32_t> allowed_token_ids;
  // vLLM's bad_words: words the output must not contain. Clients give the strings; the router
  // tokenizes each (BadWordsTokenIds in common/tokenizer/bad_words.h: as given and with a
  // leading space) into bad_words_token_ids, all a worker reads. At each step the sampler sets
  // the logit of a sequence's last token to -inf when the output generated so far ends with the
  // sequence's other tokens (always, for a one-token sequence). Not with beam search.
  static constexpr size_t kMaxBadWords = 128;
  static constexpr size_t kMaxBadWordBytes = 256;
  static constexpr size_t kMaxBadWordsTokenIds = size_t{1} << 16;  // over all the sequences
  std::vector<std::string> bad_words;
  std::vector<std::vector<int32_t>> bad_words_token_ids;  // each non-empty

  // Several outputs per request. n samples share the prompt's KV blocks. Beam search (vLLM V0
  // semantics, beam_width >= 2) keeps the beam_width most likely continuations, ignores the
  // sampling fields (temperature included) and returns the n best finished beams, ranked by
  // cumulative logprob / output_length^length_penalty.
  static constexpr int32_t kMaxN = 64;
  static constexpr int32_t kMaxBeamWidth = 64;
  int32_t n = 1;
  int32_t beam_width = 0;  // 0 or 1: no beam search
  float length_penalty = 1.0f;

  // Structured output (issue 18): the output must be a string of a grammar. Only the shape is
  // checked here (common knows no grammar); the router compiles the constraint
  // (structured/grammar_cache.h) before admitting the request, and the worker masks each step's
  // logits with it. Not with beam search.
  enum class ConstraintKind : uint8_t {
    kNone,
    kJsonSchema,  // constraint: a JSON Schema
    kJsonObject,  // constraint: empty (any JSON object)
    kRegex,       // constraint: the pattern
    kChoice,      // constraint: a JSON array of strings
    kGrammar,     // constraint: GBNF, start rule `root`
  };
  static constexpr size_t kMaxConstraintBytes = size_t{1} << 20;
  ConstraintKind constraint_kind = ConstraintKind::kNone;
  std::string constraint;

  bool beam_search() const { return beam_width > 1; }

  bool constrained() const { return constraint_kind != ConstraintKind::kNone; }

  bool greedy() const { return temperature < kGreedyTemperature; }

  /// InvalidArgument naming the first out-of-range field and its allowed range.
  absl::Status Validate() const;

  /// Reads the vLLM/OpenAI field names from a JSON object; absent or null fields keep their
  /// defaults, other keys are ignored (the caller's business). A field of the wrong type is
  /// InvalidArgument naming it. Does not call Validate().
  static absl::StatusOr<SamplingParams> FromJson(const nlohmann::json& json);
  /// Whether FromJson reads `key` (it ignores any other; callers that take a whole object from
  /// outside refuse the rest).
  static bool IsJsonField(std::string_view key);
};

}  // namespace pagoda
