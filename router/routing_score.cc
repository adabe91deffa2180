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
  const StepCost& cost = state.step_cost;
  const int64_t cached = std::clamp<int64_t>(state.cached_tokens, 0, num_prompt_tokens);
  const int64_t uncached = num_prompt_tokens - cached;
  const int64_t queued = std::max<int64_t>(0, state.queued_prefill_tokens);
  const int64_t running = std::max<int64_t>(0, state.num_running_seqs);
  double in_flight = 0;
  if (state.in_flight_steps > 0) {
    const double steps = static_cast<double>(state.in_flight_steps);
    const double all =
        cost.Seconds(steps, static_cast<double>(std::max<int64_t>(0, state.in_flight_tokens)));
    in_flight = all - 0.5 * all / steps;
  }
  const int64_t room = std::max<int64_t>(1, state.step_token_budget - running);
  const int64_t steps = std::max<int64_t>(1, (queued + uncached + room - 1) / room);
  return in_flight + cost.Seconds(static_cast<double>(steps),
                                  static_cast<double>(queued + uncached) +
                                      static_cast<double>(running) * static_cast<double>(steps));
}

RoutingChoice ChooseReplica(int64_t num_prompt_tokens,
                            absl::Span<const ReplicaRoutingState> candidates) {
  PAGODA_CHECK(!candidates.empty()) << "ChooseReplica: no candidate";
  RoutingChoice choice;
  choice.ttft_s.reserve(candidates.size());
  int64_t max_cached = 0;
  for (const ReplicaRoutingState& state : candidates) {
    PAGODA_CHECK(state.step_cost.per_token_s > 0 && state.step_cost.fixed_s >= 0)
        << "ChooseReplica: replica " << state.index << " step cost " << state.step_cost.fixed_s
        << " s + " << state.step_cost.per_token_s << " s per token";
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
  // Estimates within half a step's fixed cost of the best are not told apart: where in the step
  // in flight a request arrives is unknown to the score. Among them the one reusing the most
  // tokens wins (ties: the lower estimate, then the lower index), since its hit also saves the
  // cluster that prefill.
  const double slack = 0.5 * candidates[best].step_cost.fixed_s;
  const int32_t fastest = best;
  for (int32_t k = 0; k < static_cast<int32_t>(candidates.size()); ++k) {
    if (choice.ttft_s[k] > choice.ttft_s[fastest] + slack) continue;
    const ReplicaRoutingState& a = candidates[k];
    const ReplicaRoutingState& b = candidates[best];
    if (a.cached_tokens != b.cached_tokens) {
      if (a.cached_tokens > b.cached_tokens) best = k;
    } else if (choice.ttft_s[k] != choice.ttft_s[best]) {
      if (choice.ttft_s[k] < choice.ttft_s[best]) best = k;
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
