#include "common/step/stop_rules.h"

#include <algorithm>
#include <limits>

namespace pagoda {

TokenStop StopRules::StopTokenKind(int32_t token) const {
  if (!ignore_eos_ && std::ranges::find(eos_token_ids_, token) != eos_token_ids_.end()) {
    return TokenStop::kEos;
  }
  if (std::ranges::find(stop_token_ids_, token) != stop_token_ids_.end()) {
    return TokenStop::kStopTokenId;
  }
  return TokenStop::kNone;
}

int64_t StopRules::NumOutputsLeft(int64_t num_output_tokens, int64_t total_len) const {
  const int64_t by_model_len =
      max_model_len_ > 0 ? max_model_len_ - total_len : std::numeric_limits<int64_t>::max();
  return std::min(max_tokens_ - num_output_tokens, by_model_len);
}

TokenStop StopRules::Check(int32_t token, int64_t num_output_tokens, int64_t total_len) const {
  if (num_output_tokens >= min_tokens_) {
    if (const TokenStop kind = StopTokenKind(token); kind != TokenStop::kNone) return kind;
  }
  return NumOutputsLeft(num_output_tokens, total_len) <= 0 ? TokenStop::kLength : TokenStop::kNone;
}

}  // namespace pagoda
