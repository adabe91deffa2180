#include "engine/ngram_proposer.h"

#include <algorithm>

namespace pagoda {

std::vector<int32_t> NgramProposer::Propose(absl::Span<const int32_t> tokens, int64_t max_tokens,
                                            int64_t num_unknown) const {
  const int64_t size = static_cast<int64_t>(tokens.size());
  if (max_tokens <= 0 || size < 2) return {};
  // With the next token unknown it counts as matched (the guess is checked later): the known
  // part of the suffix needs one token less.
  const int64_t min_n = std::max<int64_t>(1, min_n_ - num_unknown);
  const int64_t max_n = std::max<int64_t>(min_n, max_n_ - num_unknown);
  const int32_t last = tokens[size - 1];
  // One backward scan: at each earlier copy of the last token, the length of the common suffix
  // (up to max_n); the longest wins, the latest among equals. With agreement, the latest
  // kMaxVoters places of that longest suffix are kept (latest first): they vote below.
  LookupHistory::Places own;
  for (int64_t p = size - 2; p >= 0; --p) {
    if (tokens[p] != last) continue;
    int64_t len = 1;
    while (len < max_n && p - len >= 0 && tokens[p - len] == tokens[size - 1 - len]) ++len;
    if (len < min_n) continue;
    own.Offer(p, len);
    // The first place of the longest possible suffix is all that is used without agreement; with
    // it, the scan goes on until enough such places vote.
    if (len == max_n && own.num_ends == (agreement_ ? kMaxVoters : 1)) break;
  }
  if (own.num_ends > 0) {
    std::vector<int32_t> drafts = Continue(tokens, own.ends, own.num_ends, max_tokens, num_unknown);
    if (!drafts.empty()) return drafts;
  }
  if (history_ == nullptr) return {};
  LookupHistory::Places places = history_->Find(tokens, min_n, max_n);
  if (places.num_ends == 0) return {};
  return Continue(history_->text(), places.ends, places.num_ends, max_tokens, num_unknown);
}

std::vector<int32_t> NgramProposer::Continue(absl::Span<const int32_t> text, int64_t* ends,
                                             int64_t num_ends, int64_t max_tokens,
                                             int64_t num_unknown) const {
  const int64_t from = ends[0] + 1;
  const int64_t count = std::min(max_tokens, static_cast<int64_t>(text.size()) - from);
  std::vector<int32_t> drafts;
  // Token j of the latest place's continuation is proposed while every place that agreed on the
  // tokens before it agrees on it too (an earlier place always has a token j). A guessed token is
  // not put to the vote (a wrong guess costs nothing: its drafts are dropped), but the places
  // that disagree with it stop voting. Without agreement, the latest place's continuation.
  for (int64_t j = 0; j < count; ++j) {
    const int32_t token = text[from + j];
    if (token < 0) break;  // the end of a history sequence
    if (agreement_) {
      int64_t alive = 0;
      for (int64_t v = 0; v < num_ends; ++v) {
        if (text[ends[v] + 1 + j] == token) ends[alive++] = ends[v];
      }
      const bool disagree = alive < num_ends;
      if (disagree && !(j == 0 && num_unknown > 0)) break;
      num_ends = alive;
    }
    drafts.push_back(token);
  }
  return drafts;
}

}  // namespace pagoda
