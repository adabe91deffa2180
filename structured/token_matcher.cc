#include "structured/token_matcher.h"

#include <algorithm>
#include <memory>
#include <string>
#include <utility>

#include "common/check.h"

namespace pagoda::structured {
namespace {

bool IsStop(const TokenVocabulary& vocab, int32_t id) {
  const std::vector<int32_t>& stops = vocab.stop_token_ids();
  return std::find(stops.begin(), stops.end(), id) != stops.end();
}

void SetBit(absl::Span<uint32_t> bitmask, int32_t id) {
  bitmask[id >> 5] |= uint32_t{1} << (id & 31);
}

bool HasBit(const std::vector<uint32_t>& bitmask, int32_t id) {
  return (bitmask[id >> 5] >> (id & 31)) & 1;
}

}  // namespace

TokenMatcher::TokenMatcher(std::shared_ptr<const CompiledGrammar> compiled)
    : compiled_(std::move(compiled)), matcher_(compiled_->grammar()) {}

bool TokenMatcher::AcceptToken(int32_t token_id) {
  const TokenVocabulary& vocab = compiled_->vocabulary();
  if (terminated_ || token_id < 0 || token_id >= vocab.size()) return false;
  if (IsStop(vocab, token_id)) {
    if (!matcher_.IsAccepting()) return false;
    terminated_ = true;
    token_was_stop_.push_back(true);
    return true;
  }
  const std::string& bytes = vocab.token_bytes(token_id);
  if (bytes.empty() || !matcher_.AcceptString(bytes)) return false;
  token_was_stop_.push_back(false);
  return true;
}

void TokenMatcher::Rollback(int num_tokens) {
  PAGODA_CHECK(num_tokens >= 0 && num_tokens <= this->num_tokens());
  for (int i = 0; i < num_tokens; ++i) {
    if (token_was_stop_.back()) {
      terminated_ = false;
    } else {
      matcher_.Rollback(1);
    }
    token_was_stop_.pop_back();
  }
}

void TokenMatcher::FillNextTokenBitmask(absl::Span<uint32_t> bitmask) {
  const TokenVocabulary& vocab = compiled_->vocabulary();
  PAGODA_CHECK(static_cast<int32_t>(bitmask.size()) == vocab.bitmask_words());
  std::fill(bitmask.begin(), bitmask.end(), 0);
  if (terminated_) return;
  scan_positions_.clear();
  matcher_.ScanPositions(&scan_positions_);
  for (int32_t position : scan_positions_) {
    const CompiledGrammar::PositionTokens& tokens = compiled_->tokens_at(position);
    if (!tokens.accepted_bitmask.empty()) {
      for (size_t w = 0; w < bitmask.size(); ++w) bitmask[w] |= tokens.accepted_bitmask[w];
    } else {
      for (int32_t id : tokens.accepted_ids) SetBit(bitmask, id);
    }
  }
  // Uncertain tokens against the full matcher, in byte order: consecutive ids share prefixes,
  // so the matcher keeps the common prefix and only scans what differs.
  checked_.assign(bitmask.size(), 0);
  for (int32_t position : scan_positions_) {
    const std::string* previous = nullptr;
    size_t depth = 0;  // bytes of `previous` the matcher holds
    for (int32_t id : compiled_->tokens_at(position).uncertain_ids) {
      if (HasBit(checked_, id) || ((bitmask[id >> 5] >> (id & 31)) & 1)) continue;
      checked_[id >> 5] |= uint32_t{1} << (id & 31);
      const std::string& bytes = vocab.token_bytes(id);
      size_t common = 0;
      if (previous != nullptr) {
        while (common < depth && common < bytes.size() && (*previous)[common] == bytes[common]) {
          ++common;
        }
      }
      matcher_.Rollback(static_cast<int>(depth - common));
      depth = common;
      while (depth < bytes.size() && matcher_.AcceptByte(static_cast<uint8_t>(bytes[depth]))) {
        ++depth;
      }
      if (depth == bytes.size()) SetBit(bitmask, id);
      previous = &bytes;
    }
    matcher_.Rollback(static_cast<int>(depth));
  }
  if (matcher_.IsAccepting()) {
    for (int32_t id : vocab.stop_token_ids()) SetBit(bitmask, id);
  }
}

}  // namespace pagoda::structured
