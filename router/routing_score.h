// RoutingScore: prefix_aware's decision as a pure function — the replica with the smallest
// estimated time to first token for this request.
//
// A step of a replica costs a fixed time plus a time per token (StepCost: the weight pass every
// step makes, then the tokens' compute). A replica's estimate, in seconds, is what is computing
// there now plus the steps the request waits for and its own:
//
//   in_flight = cost(in_flight_steps, in_flight_tokens) - half of one in-flight step
//               // the steps running or submitted; on average the request arrives halfway
//               // through the first one
//   room      = max(1, step_token_budget - num_running_seqs)   // prefill tokens per step
//   steps     = max(1, ceil((queued_prefill_tokens + uncached_tokens) / room))
//   ttft_s    = in_flight
//             + steps * fixed_s                                // every step's weight pass
//             + (queued_prefill_tokens + uncached_tokens      // prefills ahead, then this one
//                + num_running_seqs * steps) * per_token_s   // the decodes that share those steps
//
// where uncached_tokens = prompt tokens - the prefix the replica would reuse. So a cached prefix
// is worth exactly the prefill it saves, and work ahead costs what it delays: between two
// replicas with the same cost and nothing in flight, the one holding C cached tokens of the
// prompt keeps it while its queued prefill and running decodes exceed the other's by at most C
// tokens (in one step), and gives way beyond that. The minimum wins, but estimates within half
// of the best one's fixed step cost count as equal (where in the step in flight the request
// arrives is unknown): among those the replica reusing the most tokens wins, then the lower
// estimate, then the lowest index.
//
//   std::vector<ReplicaRoutingState> states = {...};  // one per candidate
//   RoutingChoice choice = ChooseReplica(num_prompt_tokens, states);
//   // choice.candidate indexes `states`; choice.reason says what decided it
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/types/span.h"

namespace pagoda {

/// Why a replica got a request (the `reason` label of pagoda:routing_decisions_total).
enum class RoutingReason {
  kPrefixHit,   // prefix_aware: the pick reuses the longest prefix any candidate holds (> 0)
  kLoad,        // least_loaded; prefix_aware when nothing is cached or the holder gave way
  kOnlyChoice,  // prefix_aware: a single candidate
  kRoundRobin,  // round_robin
};
inline constexpr int kNumRoutingReasons = 4;
std::string_view RoutingReasonName(RoutingReason reason);

/// What one engine step of a replica costs: fixed_s + per_token_s * tokens seconds.
struct StepCost {
  double fixed_s = 0;      // every step, whatever its size (>= 0): a decode step's weight pass
  double per_token_s = 0;  // each token the step computes, prefill or decode (> 0)

  /// `steps` steps computing `tokens` tokens in all.
  double Seconds(double steps, double tokens) const {
    return steps * fixed_s + tokens * per_token_s;
  }
  friend bool operator==(const StepCost&, const StepCost&) = default;
};

/// One candidate replica as the score sees it.
struct ReplicaRoutingState {
  int32_t index = 0;                  // the replica's index: the last tie-break
  int64_t queued_prefill_tokens = 0;  // prompt tokens queued there and not scheduled yet
  int64_t num_running_seqs = 0;       // each adds a decode token to every step the request waits
  int64_t in_flight_steps = 0;        // steps submitted whose results are not in yet
  int64_t in_flight_tokens = 0;       // their tokens (prefill + decode)
  int64_t step_token_budget = 4096;   // max new tokens per step (max_num_batched_tokens), >= 1
  StepCost step_cost;                 // measured; per_token_s > 0
  int64_t cached_tokens = 0;          // the prompt's prefix it would reuse, <= the prompt
};

struct RoutingChoice {
  int32_t candidate = -1;  // index into the states given to ChooseReplica
  RoutingReason reason = RoutingReason::kLoad;
  std::vector<double> ttft_s;  // every candidate's estimate, in their order (logs and tests)
};

/// The estimate above for one replica and a prompt of `num_prompt_tokens`.
double EstimateTtftSeconds(int64_t num_prompt_tokens, const ReplicaRoutingState& state);

/// The candidate with the smallest estimate, up to the slack above (ties: more cached tokens,
/// then the lower estimate, then the lower index).
/// `candidates` must not be empty.
RoutingChoice ChooseReplica(int64_t num_prompt_tokens,
                            absl::Span<const ReplicaRoutingState> candidates);

}  // namespace pagoda
