// NgramProposer: speculative decoding's prompt lookup. For a sequence's known tokens (prompt and
// outputs), it takes the last n tokens for n from prompt_lookup_max down to prompt_lookup_min,
// finds the latest earlier place where they occur, and proposes the tokens that followed there.
// Costless on text that does not repeat (nothing matches, nothing is proposed); on text that
// quotes its context (code edits, summaries, extraction) the proposals are long and right.
//
//   NgramProposer proposer(spec_config);
//   std::vector<int32_t> drafts = proposer.Propose(seq->token_ids, /*max_tokens=*/4);
#pragma once

#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "engine/speculative_config.h"

namespace pagoda {

class NgramProposer {
 public:
  explicit NgramProposer(const SpeculativeConfig& config)
      : min_n_(config.prompt_lookup_min), max_n_(config.prompt_lookup_max) {}

  /// At most max_tokens tokens to follow `tokens`; empty when no suffix of at least min_n
  /// tokens occurred before. O(tokens * max_n).
  std::vector<int32_t> Propose(absl::Span<const int32_t> tokens, int64_t max_tokens) const;

  /// Whether Propose could find anything once `num_unknown` more tokens, whatever they are,
  /// follow `known`: false only when no choice of them lets a suffix of at least min_n tokens
  /// match earlier. The last min_n - num_unknown known tokens must occur before (ending at
  /// least one position earlier); with num_unknown >= min_n anything may match. Lets a
  /// pipelined sequence (its last token still in flight) skip the wait for it when the lookup
  /// is bound to fail: on text that does not repeat, speculation then costs nothing.
  /// O(known.size() * min_n).
  bool MayPropose(absl::Span<const int32_t> known, int64_t num_unknown) const;

 private:
  int32_t min_n_;
  int32_t max_n_;
};

}  // namespace pagoda
