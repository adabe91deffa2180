// StopChecker: decides, token by token, when a request stops and which of its text may be
// streamed now, with vLLM's semantics:
// - stop strings are matched on the detokenized text across token boundaries; the text is cut
//   before the stop string (include_stop_str_in_output keeps it) and nothing after it is emitted;
// - text that could still become the start of a stop string is held back until it is decided, so
//   a client never sees a partial stop string that is later retracted;
// - EOS (unless ignore_eos) and stop_token_ids stop with "stop"; the stop token's own text is left
//   out unless include_stop_str_in_output;
// - none of these fire while fewer than min_tokens tokens were generated;
// - max_tokens output tokens or max_model_len tokens in all finish with "length".
// The token rules (all but stop strings) are common/step/stop_rules.h, the workers' own.
// When several stop strings match, the one that completes first in the text wins (the shortest
// of two that share a start; the longer of two that end together), so the outcome does not
// depend on how the text was split into tokens. Matching is incremental (one KMP automaton per
// stop string): O(delta bytes × stop strings) per call.
//
//   StopChecker checker(StopConfig::FromSamplingParams(params, tokenizer.eos_token_id(), 2048));
//   for each sampled token:
//     StopResult r = checker.Append(detok.Append(token), token, num_output_tokens, total_len);
//     stream(r.emit_now);
//     if (r.finish_reason) { if (*r.finish_reason == FinishReason::kLength) stream(detok.Finish());
//                            break; }
//   on abort: stream(checker.Flush());
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/sampling_params.h"
#include "engine/finish_reason.h"

namespace pagoda {

struct StopConfig {
  std::vector<std::string> stop_strings;  // non-empty UTF-8 strings; empty ones are ignored
  bool include_stop_str_in_output = false;
  std::vector<int32_t> stop_token_ids;
  std::optional<int32_t> eos_token_id;
  bool ignore_eos = false;
  int64_t min_tokens = 0;     // output tokens before any stop condition but length may fire
  int64_t max_tokens = 16;    // output tokens
  int64_t max_model_len = 0;  // prompt + output tokens; 0: no limit

  static StopConfig FromSamplingParams(const SamplingParams& params,
                                       std::optional<int32_t> eos_token_id, int64_t max_model_len);
};

/// vLLM's stop_reason: none (EOS, length), the matched stop string, or the stop token id.
using StopReason = std::variant<std::monostate, std::string, int32_t>;

struct StopResult {
  std::string emit_now;  // text the client may see now (valid UTF-8 when the deltas are)
  std::optional<FinishReason> finish_reason;
  StopReason stop_reason;
};

class StopChecker {
 public:
  explicit StopChecker(StopConfig config);

  /// Feeds the text of `token_id` (the detokenizer's delta) after it was generated as the
  /// `num_output_tokens`-th output token, making the sequence `total_len` tokens long. Once a
  /// result carries a finish reason, later calls return an empty result.
  StopResult Append(std::string_view delta, int32_t token_id, int64_t num_output_tokens,
                    int64_t total_len);

  /// Ends the stream without a stop (e.g. an abort): returns the held-back text, which was not a
  /// stop string after all. Empty after a stop.
  std::string Flush();

  bool finished() const { return finished_; }
  /// Bytes held back because they may begin a stop string (at most the longest one - 1).
  size_t num_held_bytes() const { return held_.size(); }

 private:
  // Knuth-Morris-Pratt automaton over one stop string's bytes.
  struct Matcher {
    std::string pattern;
    std::vector<size_t> failure;  // [pattern.size()]: longest proper border of pattern[0, i]
    size_t matched = 0;           // bytes of pattern that end the text seen so far
  };

  // Advances `m` by one byte; true when the whole pattern now ends the text.
  static bool Step(Matcher& m, char byte);
  StopResult Finish(std::string emit, FinishReason reason, StopReason stop_reason);

  const StopConfig config_;
  std::vector<Matcher> matchers_;
  std::string held_;  // text withheld from the client: the longest tail that begins a stop string
  bool finished_ = false;
};

}  // namespace pagoda
