#include "engine/lookup_history.h"

#include <algorithm>

namespace pagoda {

LookupHistory::LookupHistory(int64_t max_tokens) : max_tokens_(std::max<int64_t>(1, max_tokens)) {}

void LookupHistory::Add(absl::Span<const int32_t> tokens) {
  std::vector<int32_t> kept;
  kept.reserve(tokens.size());
  for (int32_t token : tokens) {
    if (token >= 0) kept.push_back(token);
  }
  if (kept.empty()) return;
  const int64_t excess = static_cast<int64_t>(kept.size()) - max_tokens_;
  if (excess > 0) kept.erase(kept.begin(), kept.begin() + excess);
  while (!starts_.empty() && num_tokens_ + static_cast<int64_t>(kept.size()) > max_tokens_) {
    DropOldest();
  }
  // Dropped tokens are compacted away once they outnumber the kept ones: each token is moved
  // and re-indexed O(1) times on average.
  if (begin_ > 0 && begin_ >= static_cast<int64_t>(text_.size()) - begin_) Compact();
  const int64_t from = static_cast<int64_t>(text_.size());
  starts_.push_back(from);
  text_.insert(text_.end(), kept.begin(), kept.end());
  text_.push_back(kSeparator);
  num_tokens_ += static_cast<int64_t>(kept.size());
  Index(from);
}

void LookupHistory::DropOldest() {
  starts_.pop_front();
  const int64_t next = starts_.empty() ? static_cast<int64_t>(text_.size()) : starts_.front();
  num_tokens_ -= next - begin_ - 1;  // its separator is not a token
  begin_ = next;
}

void LookupHistory::Compact() {
  text_.erase(text_.begin(), text_.begin() + begin_);
  for (int64_t& start : starts_) start -= begin_;
  begin_ = 0;
  pairs_.clear();
  Index(0);
}

void LookupHistory::Index(int64_t from) {
  const int64_t size = static_cast<int64_t>(text_.size());
  for (int64_t i = std::max<int64_t>(from, 1); i < size; ++i) {
    if (text_[i - 1] >= 0 && text_[i] >= 0) pairs_[PairKey(text_[i - 1], text_[i])].push_back(i);
  }
}

LookupHistory::Places LookupHistory::Find(absl::Span<const int32_t> tokens, int64_t min_n,
                                          int64_t max_n) const {
  Places places;
  const int64_t size = static_cast<int64_t>(tokens.size());
  min_n = std::max<int64_t>(min_n, 2);
  if (size < min_n || max_n < min_n) return places;
  const auto it = pairs_.find(PairKey(tokens[size - 2], tokens[size - 1]));
  if (it == pairs_.end()) return places;
  const std::vector<int64_t>& positions = it->second;
  const int64_t num_scanned = std::min<int64_t>(kMaxScan, static_cast<int64_t>(positions.size()));
  for (int64_t i = 0; i < num_scanned; ++i) {
    const int64_t q = positions[positions.size() - 1 - static_cast<size_t>(i)];
    if (q < begin_) break;           // a dropped sequence's, and so are all before it
    if (text_[q + 1] < 0) continue;  // its sequence ends there: nothing to propose
    int64_t len = 2;                 // the pair matched; extend backwards
    while (len < max_n && len < size && q - len >= begin_ &&
           text_[q - len] == tokens[size - 1 - len]) {
      ++len;
    }
    if (len < min_n) continue;
    places.Offer(q - begin_, len);
    if (len == max_n && places.num_ends == kMaxPlaces) break;
  }
  return places;
}

}  // namespace pagoda
