// The per-sequence state of constrained decoding: which tokens may come next (a bitmask over the
// vocabulary), advanced by the sampled token ids, rolled back by n tokens (rejected speculative
// tokens, or a preempted sequence that is recomputed).
//
// The mask is the union, over the byte positions the matcher can scan next, of each position's
// accepted tokens (precomputed by CompiledGrammar) and of its uncertain tokens that the full
// matcher accepts now; stop ids (EOS) are allowed exactly when the input so far is complete.
//
//   TokenMatcher m(compiled);
//   std::vector<uint32_t> mask(compiled->vocabulary().bitmask_words());
//   m.FillNextTokenBitmask(absl::MakeSpan(mask));   // bit (id % 32) of word id / 32
//   ... sample a token whose bit is set ...
//   if (!m.AcceptToken(id)) { ... not allowed: state unchanged }
//   if (m.IsTerminated()) { ... a stop id was accepted }
//
// Not thread-safe: one per sequence. The CompiledGrammar is shared.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/types/span.h"
#include "structured/compiled_grammar.h"
#include "structured/grammar_matcher.h"

namespace pagoda::structured {

class TokenMatcher {
 public:
  explicit TokenMatcher(std::shared_ptr<const CompiledGrammar> compiled);

  /// Advances by one token; false (no change) when the grammar does not allow it now. A stop id
  /// is allowed when IsAccepting() and terminates the matcher.
  bool AcceptToken(int32_t token_id);
  /// Writes the allowed tokens of the next step; `bitmask` has vocabulary().bitmask_words()
  /// words. After termination nothing is allowed.
  void FillNextTokenBitmask(absl::Span<uint32_t> bitmask);
  /// Undoes the last `num_tokens` accepted tokens (a stop id included).
  void Rollback(int num_tokens);

  /// The tokens so far form a complete string of the grammar (a stop id may follow).
  bool IsAccepting() const { return !terminated_ && matcher_.IsAccepting(); }
  bool IsTerminated() const { return terminated_; }
  /// The words FillNextTokenBitmask writes.
  int64_t bitmask_words() const { return compiled_->vocabulary().bitmask_words(); }
  int num_tokens() const { return static_cast<int>(token_was_stop_.size()); }

 private:
  std::shared_ptr<const CompiledGrammar> compiled_;
  GrammarMatcher matcher_;
  std::vector<bool> token_was_stop_;  // [token] -> a stop id (no matcher step)
  bool terminated_ = false;
  std::vector<int32_t> scan_positions_;  // scratch
  std::vector<uint32_t> checked_;        // scratch: uncertain ids already checked this step
};

}  // namespace pagoda::structured
