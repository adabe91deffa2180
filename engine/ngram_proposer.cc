#include "engine/ngram_proposer.h"

#include <algorithm>

namespace pagoda {

std::vector<int32_t> NgramProposer::Propose(absl::Span<const int32_t> tokens,
                                            int64_t max_tokens) const {
  const int64_t size = static_cast<int64_t>(tokens.size());
  if (max_tokens <= 0 || size < 2) return {};
  const int32_t last = tokens[size - 1];
  // One backward scan: at each earlier copy of the last token, the length of the common suffix
  // (up to max_n); the longest wins, the latest among equals.
  int64_t best_end = -1;  // index of the matched copy of the last token
  int64_t best_len = 0;
  for (int64_t p = size - 2; p >= 0; --p) {
    if (tokens[p] != last) continue;
    int64_t len = 1;
    while (len < max_n_ && p - len >= 0 && tokens[p - len] == tokens[size - 1 - len]) ++len;
    if (len >= min_n_ && len > best_len) {
      best_end = p;
      best_len = len;
      if (len == max_n_) break;
    }
  }
  if (best_end < 0) return {};
  const int64_t from = best_end + 1;
  const int64_t count = std::min(max_tokens, size - from);
  return std::vector<int32_t>(tokens.begin() + from, tokens.begin() + from + count);
}

bool NgramProposer::MayPropose(absl::Span<const int32_t> known, int64_t num_unknown) const {
  const int64_t size = static_cast<int64_t>(known.size());
  if (num_unknown <= 0) return !Propose(known, 1).empty();
  if (size + num_unknown < 2) return false;
  // The known part of a min_n-token match: the last `gram` known tokens, found ending at some
  // e <= size - 2 (the unknown tokens match whatever sits after it).
  const int64_t gram = min_n_ - num_unknown;
  if (gram <= 0) return true;
  if (gram > size) return false;
  for (int64_t e = size - 2; e >= gram - 1; --e) {
    int64_t len = 0;
    while (len < gram && known[e - len] == known[size - 1 - len]) ++len;
    if (len == gram) return true;
  }
  return false;
}

}  // namespace pagoda
