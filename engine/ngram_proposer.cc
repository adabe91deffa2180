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
  // (up to max_n); the longest wins, the latest among equals.
  int64_t best_end = -1;  // index of the matched copy of the last token
  int64_t best_len = 0;
  for (int64_t p = size - 2; p >= 0; --p) {
    if (tokens[p] != last) continue;
    int64_t len = 1;
    while (len < max_n && p - len >= 0 && tokens[p - len] == tokens[size - 1 - len]) ++len;
    if (len >= min_n && len > best_len) {
      best_end = p;
      best_len = len;
      if (len == max_n) break;
    }
  }
  if (best_end < 0) return {};
  const int64_t from = best_end + 1;
  const int64_t count = std::min(max_tokens, size - from);
  return std::vector<int32_t>(tokens.begin() + from, tokens.begin() + from + count);
}

}  // namespace pagoda
