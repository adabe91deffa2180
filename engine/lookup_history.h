// LookupHistory: the tokens of recently finished sequences (prompt and output), which the n-gram
// proposer also searches when a sequence's own tokens propose nothing ("prompt_lookup_history_
// tokens" in --speculative-config). Requests built from one template (an agent's tool calls, code
// edits, extraction, batch jobs) answer alike: the previous answers predict the next one where
// its own prompt does not. Bounded: the oldest sequences are dropped once the kept tokens exceed
// max_tokens (a longer sequence keeps its last max_tokens). Indexed by token pair: a lookup
// visits only the places where the sequence's last two tokens occurred, latest first.
//
// Only the engine's scheduler thread uses it (no lock). What it holds affects which tokens are
// proposed, never which are output (verification keeps the model's own), but a request's speed
// then depends on what earlier requests said: it is off by default, like a shared prefix cache.
//
//   LookupHistory history(/*max_tokens=*/1 << 20);
//   history.Add(finished_seq->token_ids);
//   LookupHistory::Places places = history.Find(seq->token_ids, /*min_n=*/2, /*max_n=*/4);
//   // places.ends: positions in history.text() of the matched suffix's last token, latest first
#pragma once

#include <cstdint>
#include <deque>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/types/span.h"

namespace pagoda {

class LookupHistory {
 public:
  /// Places of a matched suffix that vote on its continuation (NgramProposer::kMaxVoters).
  static constexpr int64_t kMaxPlaces = 8;
  /// Places of a token pair examined per lookup, latest first: bounds a lookup's cost where a
  /// pair is everywhere (indentation, punctuation).
  static constexpr int64_t kMaxScan = 256;
  /// Marks the end of each sequence in text(): never a token, so no match or continuation
  /// crosses from one sequence into the next.
  static constexpr int32_t kSeparator = -1;

  /// max_tokens >= 1: the most tokens kept.
  explicit LookupHistory(int64_t max_tokens);

  /// Keeps a finished sequence's tokens (negative ids are dropped: they are not tokens), and
  /// drops the oldest sequences while more than max_tokens are kept.
  void Add(absl::Span<const int32_t> tokens);

  /// The places of the longest suffix found so far (NgramProposer's own scan keeps them too).
  struct Places {
    int64_t ends[kMaxPlaces];  // positions in text() of the suffix's last token, latest first
    int64_t num_ends = 0;
    int64_t length = 0;  // tokens matched (the same at every place)

    /// A place where `length` tokens matched, offered latest first: a longer match replaces the
    /// places, an equal one joins them (up to kMaxPlaces), a shorter one is ignored.
    void Offer(int64_t end, int64_t matched) {
      if (matched < length) return;
      if (matched > length) {
        length = matched;
        num_ends = 0;
      }
      if (num_ends < kMaxPlaces) ends[num_ends++] = end;
    }
  };
  /// The longest suffix of `tokens`, of min_n..max_n tokens (at least 2), found in the history,
  /// and its latest kMaxPlaces places that have a continuation; num_ends 0 when none.
  Places Find(absl::Span<const int32_t> tokens, int64_t min_n, int64_t max_n) const;

  /// The kept tokens, sequences separated by kSeparator (Places index it).
  absl::Span<const int32_t> text() const {
    return absl::MakeConstSpan(text_).subspan(static_cast<size_t>(begin_));
  }
  /// Tokens kept (separators not counted).
  int64_t num_tokens() const { return num_tokens_; }
  int64_t num_sequences() const { return static_cast<int64_t>(starts_.size()); }

 private:
  static uint64_t PairKey(int32_t first, int32_t second) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(first)) << 32) |
           static_cast<uint32_t>(second);
  }
  // Adds the pairs ending at text_[from...] to pairs_.
  void Index(int64_t from);
  void DropOldest();
  // Moves the kept sequences to the front of text_ and rebuilds pairs_.
  void Compact();

  const int64_t max_tokens_;
  // text_[begin_, end): the kept sequences, each followed by kSeparator; text_[0, begin_) holds
  // dropped ones until the next compaction (when they outnumber the kept tokens).
  std::vector<int32_t> text_;
  int64_t begin_ = 0;
  std::deque<int64_t> starts_;  // where each kept sequence starts in text_, oldest first
  int64_t num_tokens_ = 0;
  // Token pair -> positions in text_ of the pair's second token, ascending; those below begin_
  // are dropped sequences' (skipped, removed at compaction).
  absl::flat_hash_map<uint64_t, std::vector<int64_t>> pairs_;
};

}  // namespace pagoda
