// RoutingScore: prefix_aware's decision as a pure function — the replica with the smallest
// estimated time to first token for this request.
//
// A replica's estimate, in seconds, is the work ahead of the request plus its own prefill, over
// the replica's measured token rate:
//
//   steps     = max(1, ceil((queued_prefill_tokens + uncached_tokens) / step_token_budget))
//   tokens    = queued_prefill_tokens                 // prefills already waiting there
//             + num_running_seqs * steps              // the decodes that share those steps
//             + uncached_tokens                       // this prompt's prefill, minus its hit
//   ttft_s    = tokens / tokens_per_s
//
// where uncached_tokens = prompt tokens - the prefix the replica would reuse. So a cached prefix
// is worth exactly the prefill it saves, and queued work costs what it delays: between two
// replicas with the same rate and no running decodes, the one holding C cached tokens of the
// prompt keeps it while its queue holds at most C more prefill tokens than the other's, and
// gives way beyond that. The minimum wins; ties go to the replica reusing more tokens, then the
// lowest index.
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

/// One candidate replica as the score sees it.
struct ReplicaRoutingState {
  int32_t index = 0;                  // the replica's index: the last tie-break
  int64_t queued_prefill_tokens = 0;  // prompt tokens queued there and not computed yet
  int64_t num_running_seqs = 0;       // each adds a decode token to every step the request waits
  int64_t step_token_budget = 4096;   // max new tokens per step (max_num_batched_tokens), >= 1
  double tokens_per_s = 0;            // measured throughput (prefill + decode tokens), > 0
  int64_t cached_tokens = 0;          // the prompt's prefix it would reuse, <= the prompt
};

struct RoutingChoice {
  int32_t candidate = -1;  // index into the states given to ChooseReplica
  RoutingReason reason = RoutingReason::kLoad;
  std::vector<double> ttft_s;  // every candidate's estimate, in their order (logs and tests)
};

/// The estimate above for one replica and a prompt of `num_prompt_tokens`.
double EstimateTtftSeconds(int64_t num_prompt_tokens, const ReplicaRoutingState& state);

/// The candidate with the smallest estimate (ties: more cached tokens, then lower index).
/// `candidates` must not be empty.
RoutingChoice ChooseReplica(int64_t num_prompt_tokens,
                            absl::Span<const ReplicaRoutingState> candidates);

}  // namespace pagoda
