// SpeculativeConfig: speculative decoding as --speculative-config sets it, in vLLM's JSON shape:
//   '{"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_max": 4,
//     "prompt_lookup_min": 2}'
//   '{"model": "models/SmolLM2.Q4_1.gguf", "num_speculative_tokens": 3}'
// with "disable_by_batch_size": N optional. The n-gram (prompt lookup) proposer runs in the
// engine (engine/ngram_proposer.h); a draft model ("method": "draft_model", implied by "model")
// runs on the workers beside the model (worker/draft_model.h).
//
//   ASSIGN_OR_RETURN(SpeculativeConfig spec, ParseSpeculativeConfig(flag_text));
//   if (spec.enabled()) { ... }
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace pagoda {

struct SchedulerStats;

enum class SpeculativeMethod { kNone, kNgram, kDraftModel };

struct SpeculativeConfig {
  SpeculativeMethod method = SpeculativeMethod::kNone;
  /// The most tokens proposed per sequence and step (k). Adaptive: a sequence proposes at most
  /// one more than it had accepted the step before, so a sequence whose proposals fail costs
  /// little.
  int32_t num_speculative_tokens = 0;
  /// N-gram: the suffix lengths matched against the sequence's earlier tokens, longest first.
  int32_t prompt_lookup_max = 4;
  int32_t prompt_lookup_min = 2;
  /// N-gram: where the longest matched suffix occurred at several places, propose only as far as
  /// the latest places' continuations agree (engine/ngram_proposer.h). Off: the latest place's
  /// continuation, as vLLM proposes.
  bool prompt_lookup_agreement = true;
  /// N-gram: tokens of finished sequences (prompt and output, the latest ones) that a sequence
  /// whose own tokens propose nothing looks up too (engine/lookup_history.h); 0: none. Off by
  /// default: a request's speed would depend on what other requests said.
  int64_t prompt_lookup_history_tokens = 0;
  /// vLLM's disable_by_batch_size: no proposals while more sequences than this run (0: no
  /// limit). Where a step is compute-bound (CPUs, large batches), a draft costs about what a
  /// decoded token costs, so speculation only pays at small batches.
  int32_t disable_by_batch_size = 0;
  /// Draft model: a model directory or a .gguf file sharing the model's tokenizer.
  std::string model;

  bool enabled() const { return method != SpeculativeMethod::kNone; }
  /// Ranges (the parser checks them; a config built in code calls this).
  absl::Status Validate() const;
  /// The JSON form that ParseSpeculativeConfig reads back ("" when disabled).
  std::string ToJson() const;
};

/// Parses --speculative-config. Empty text: disabled. InvalidArgument naming the key for
/// malformed JSON, unknown keys or methods, out-of-range numbers, keys of the other method.
absl::StatusOr<SpeculativeConfig> ParseSpeculativeConfig(const std::string& text);

/// One line for people: drafts, draft tokens, accepted tokens, the acceptance rate and the mean
/// tokens per verification (accepted + the one sampled after them).
std::string FormatSpeculativeStats(const SchedulerStats& stats);

}  // namespace pagoda
