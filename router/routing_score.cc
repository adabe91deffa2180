#include "router/routing_score.h"

#include <algorithm>

#include "common/check.h"

namespace pagoda {

std::string_view RoutingReasonName(RoutingReason reason) {
  switch (reason) {
    case RoutingReason::kPrefixHit:
      return "prefix_hit";
    case RoutingReason::kLoad:
      return "load";
    case RoutingReason::kOnlyChoice:
      return "only_choice";
    case RoutingReason::kRoundRobin:
      return "round_robin";
  }
  return "unknown";
}

double EstimateTtftSeconds(int64_t num_prompt_tokens, const ReplicaRoutingState& state) {
  const int64_t cached = std::clamp<int64_t>(state.cached_tokens, 0, num_prompt_tokens);
  const int64_t uncached = num_prompt_tokens - cached;
  const int64_t queued = std::max<int64_t>(0, state.queued_prefill_tokens);
  const int64_t budget = std::max<int64_t>(1, state.step_token_budget);
  const int64_t steps = std::max<int64_t>(1, (queued + uncached + budget - 1) / budget);
  const double tokens = static_cast<double>(queued) +
                        static_cast<double>(std::max<int64_t>(0, state.num_running_seqs)) *
                            static_cast<double>(steps) +
                        static_cast<double>(uncached);
  return tokens / state.tokens_per_s;
}

RoutingChoice ChooseReplica(int64_t num_prompt_tokens,
                            absl::Span<const ReplicaRoutingState> candidates) {
  PAGODA_CHECK(!candidates.empty()) << "ChooseReplica: no candidate";
  RoutingChoice choice;
  choice.ttft_s.reserve(candidates.size());
  int64_t max_cached = 0;
  for (const ReplicaRoutingState& state : candidates) {
    PAGODA_CHECK(state.tokens_per_s > 0)
        << "ChooseReplica: replica " << state.index << " rate " << state.tokens_per_s;
    choice.ttft_s.push_back(EstimateTtftSeconds(num_prompt_tokens, state));
    max_cached = std::max(max_cached, state.cached_tokens);
  }
  int32_t best = 0;
  for (int32_t k = 1; k < static_cast<int32_t>(candidates.size()); ++k) {
    const ReplicaRoutingState& a = candidates[k];
    const ReplicaRoutingState& b = candidates[best];
    if (choice.ttft_s[k] != choice.ttft_s[best]) {
      if (choice.ttft_s[k] < choice.ttft_s[best]) best = k;
    } else if (a.cached_tokens != b.cached_tokens) {
      if (a.cached_tokens > b.cached_tokens) best = k;
    } else if (a.index < b.index) {
      best = k;
    }
  }
  choice.candidate = best;
  if (candidates.size() == 1) {
    choice.reason = RoutingReason::kOnlyChoice;
  } else if (max_cached > 0 && candidates[best].cached_tokens == max_cached) {
    choice.reason = RoutingReason::kPrefixHit;
  } else {
    choice.reason = RoutingReason::kLoad;
  }
  return choice;
}

}  // namespace pagoda
