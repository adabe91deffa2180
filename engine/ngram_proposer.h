// NgramProposer: speculative decoding's prompt lookup. For a sequence's known tokens (prompt and
// outputs), it takes the last n tokens for n from prompt_lookup_max down to prompt_lookup_min,
// finds the latest earlier place where they occur, and proposes the tokens that followed there.
// With agreement (prompt_lookup_agreement, the default) the latest kMaxVoters places of that
// suffix vote: a token is proposed only while every place that agreed so far continues the same
// way, so a suffix that was followed by different text in different places (a common phrase, a
// line of code that recurs with variations) proposes only what they share, often nothing: fewer
// drafts rejected, nearly as many accepted. Costless on text that does not repeat (nothing
// matches, nothing is proposed); on text that quotes its context (code edits, summaries,
// extraction) the proposals are long and right. For a pipelined sequence, whose last token is
// still in flight, it also guesses that token (the batching policy sends the drafts behind the
// guess: CachedSequence::draft_guard_token_id); the guess is not put to the vote. Given a
// LookupHistory (engine/lookup_history.h), a sequence whose own tokens propose nothing looks up
// the finished sequences' tokens the same way.
//
//   NgramProposer proposer(spec_config, /*history=*/nullptr);
//   std::vector<int32_t> drafts = proposer.Propose(seq->token_ids, /*max_tokens=*/4);
//   std::vector<int32_t> guess_then_drafts = proposer.Propose(known, 5, /*num_unknown=*/1);
#pragma once

#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "engine/lookup_history.h"
#include "engine/speculative_config.h"

namespace pagoda {

class NgramProposer {
 public:
  /// Places of the longest matched suffix that vote on its continuation (the latest ones).
  static constexpr int64_t kMaxVoters = LookupHistory::kMaxPlaces;

  /// `history`, when not null, must outlive the proposer.
  explicit NgramProposer(const SpeculativeConfig& config, const LookupHistory* history = nullptr)
      : min_n_(config.prompt_lookup_min),
        max_n_(config.prompt_lookup_max),
        agreement_(config.prompt_lookup_agreement),
        history_(history) {}

  /// At most max_tokens tokens to follow `tokens`; empty when no suffix of at least min_n
  /// tokens occurred before (in `tokens`, else in the history: there a suffix of at least two
  /// known tokens). With num_unknown = 1 the token after `tokens` is still in flight (a pipelined
  /// sequence): a suffix of min_n - 1 known tokens (at least one) suffices, and the first token
  /// proposed is a guess of the unknown one, to be checked once it is known (the drafts after it
  /// stand only if it holds). O(tokens * max_n + kMaxVoters * max_tokens), and a history lookup
  /// O(LookupHistory::kMaxScan * max_n + kMaxVoters * max_tokens).
  std::vector<int32_t> Propose(absl::Span<const int32_t> tokens, int64_t max_tokens,
                               int64_t num_unknown = 0) const;

 private:
  // The continuation of the places ends[0..num_ends) (latest first) of a suffix in `text`: the
  // latest place's, as far as the places agree (with agreement) and its sequence goes (up to a
  // LookupHistory::kSeparator). Reorders `ends`.
  std::vector<int32_t> Continue(absl::Span<const int32_t> text, int64_t* ends, int64_t num_ends,
                                int64_t max_tokens, int64_t num_unknown) const;

  int32_t min_n_;
  int32_t max_n_;
  bool agreement_;
  const LookupHistory* history_;
};

}  // namespace pagoda
