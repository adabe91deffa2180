// GlobalScheduler: which replica gets a request. Three policies:
//   - round_robin: the next ready replica after the last one picked;
//   - least_loaded: fewest running + waiting requests, ties by KV cache usage, then index;
//   - prefix_aware (default): the replica with the smallest estimated time to first token
//     (router/routing_score.h): the prefill queued there, the decodes running beside it, and
//     this prompt's prefill minus the prefix the replica would reuse, and the steps computing
//     there now, at the replica's measured step cost. The reusable prefix, in tokens, is the larger
//     of
//       * what its prefix cache holds now (ReplicaSnapshot::cached_prefix_tokens, which asks the
//         replica's KVCacheManager), and
//       * the longest prefix of full blocks matching prompts recently routed to it (their block
//         hashes, HashBlockTokens with extra key 0, in a bounded LRU per replica): a burst of
//         requests sharing a new prefix arrives before the first one's prefill has cached it,
//         and should still land where that prefill will be.
//     A replica holding the prefix therefore keeps it while the prefill it saves outweighs the
//     extra queueing there, and gives way beyond; when every replica is busy, the one saving
//     the most compute still wins.
//
// Loads come from the caller's snapshots, so concurrent Picks that see the same snapshots see the
// same loads; the routed-hash memory, by contrast, is updated under the lock of each decision, so
// the second request of a burst already sees the first one's prefix. Step costs come from the
// replicas' engine steps (ObserveStep): per replica, moving averages of the steps that prefill
// and of the decode-only ones, the line through the two giving a step's fixed cost and its cost
// per token.
//
//   GlobalScheduler scheduler({.policy = RoutingPolicy::kPrefixAware, .block_size = 16},
//                             /*num_replicas=*/2);
//   std::vector<ReplicaSnapshot> snapshots = {r0.Snapshot(), r1.Snapshot()};
//   ASSIGN_OR_RETURN(RoutingDecision decision, scheduler.Decide(prompt_token_ids, snapshots));
//   // replica failed before taking it: pick another
//   ASSIGN_OR_RETURN(int32_t replica, scheduler.Pick(prompt_token_ids, snapshots, {replica}));
//   scheduler.ObserveStep(replica, /*prefill=*/512, /*decode=*/8, /*seconds=*/0.5);  // each step
//   scheduler.Reset(replica);  // the replica went down or was re-initialised
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "router/routing_score.h"

namespace pagoda {

enum class RoutingPolicy { kRoundRobin, kLeastLoaded, kPrefixAware };

/// "round_robin", "least_loaded" or "prefix_aware"; InvalidArgument listing them otherwise.
absl::StatusOr<RoutingPolicy> ParseRoutingPolicy(const std::string& text);
std::string_view RoutingPolicyName(RoutingPolicy policy);

/// What the global scheduler knows of one replica at the moment of a decision.
struct ReplicaSnapshot {
  bool ready = false;
  int64_t num_running_requests = 0;
  int64_t num_waiting_requests = 0;
  double kv_cache_usage = 0;          // share of device blocks referenced, [0, 1]
  int64_t num_running_seqs = 0;       // decoding or prefilling now
  int64_t queued_prefill_tokens = 0;  // prompt tokens queued and not scheduled yet
  int64_t num_in_flight_steps = 0;    // steps submitted whose results are not in yet
  int64_t num_in_flight_tokens = 0;   // their tokens (prefill + decode)
  int64_t step_token_budget = 4096;   // the engine's max_num_batched_tokens
  /// Tokens of the prompt's prefix the replica's prefix cache holds now (full blocks, never the
  /// last token). Thread-safe; may be empty (then only the routed-hash memory counts).
  std::function<int64_t(absl::Span<const int32_t>)> cached_prefix_tokens;

  int64_t load() const { return num_running_requests + num_waiting_requests; }
};

struct GlobalSchedulerOptions {
  RoutingPolicy policy = RoutingPolicy::kPrefixAware;
  /// Tokens per KV block: the replicas' block size, so routed hashes match their cache's.
  int64_t block_size = 16;
  /// prefix_aware's token rate (a step costing 1 / default_tokens_per_s seconds per token, no
  /// fixed cost) for a replica none of whose prefill steps was measured yet, while no replica's
  /// was; afterwards an unmeasured replica takes the mean of the measured costs. Only ratios
  /// matter then, so the default only has to be equal for all.
  double default_tokens_per_s = 4096;
  /// Weight of each measured step in the moving averages of tokens and seconds per step.
  double rate_ewma_weight = 0.2;
  /// Block hashes remembered per replica (LRU): 64k blocks of 16 tokens cover 1M prompt tokens,
  /// about 5 MiB per replica. 0 turns the memory off (only the exact cache query counts).
  int64_t max_routed_hashes_per_replica = 64 * 1024;

  /// InvalidArgument naming the field: block_size >= 1, default_tokens_per_s > 0,
  /// 0 < rate_ewma_weight <= 1, 0 <= max_routed_hashes_per_replica < 2^31.
  absl::Status Validate() const;
};

/// A Pick and what decided it.
struct RoutingDecision {
  int32_t replica = -1;
  RoutingReason reason = RoutingReason::kLoad;
  friend bool operator==(const RoutingDecision&, const RoutingDecision&) = default;
};

/// Thread-safe: routing decisions come from many RPC threads.
class GlobalScheduler {
 public:
  /// `options` must have passed Validate() (aborts otherwise); num_replicas >= 0.
  GlobalScheduler(const GlobalSchedulerOptions& options, int32_t num_replicas);
  ~GlobalScheduler();
  GlobalScheduler(const GlobalScheduler&) = delete;
  GlobalScheduler& operator=(const GlobalScheduler&) = delete;

  /// The replica for a request whose replica will prefill `prompt_token_ids`, among the ready
  /// replicas of `replicas` (one snapshot per replica, by index) not in `exclude`. Unavailable
  /// when there is none. Under prefix_aware, remembers the prompt's full-block hashes for the
  /// replica picked. Calls the snapshots' cached_prefix_tokens without holding the lock.
  absl::StatusOr<RoutingDecision> Decide(absl::Span<const int32_t> prompt_token_ids,
                                         absl::Span<const ReplicaSnapshot> replicas,
                                         absl::Span<const int32_t> exclude = {})
      ABSL_LOCKS_EXCLUDED(mu_);
  /// Decide()'s replica.
  absl::StatusOr<int32_t> Pick(absl::Span<const int32_t> prompt_token_ids,
                               absl::Span<const ReplicaSnapshot> replicas,
                               absl::Span<const int32_t> exclude = {}) ABSL_LOCKS_EXCLUDED(mu_);

  /// One engine step of `replica`: `num_prefill_tokens` + `num_decode_tokens` computed in
  /// `seconds`. Give every step: the decode-only ones measure the fixed cost, the ones that
  /// prefill the cost per token. Ignored unless it has tokens and seconds > 0.
  void ObserveStep(int32_t replica, int64_t num_prefill_tokens, int64_t num_decode_tokens,
                   double seconds) ABSL_LOCKS_EXCLUDED(mu_);
  /// The step cost prefix_aware uses for `replica` now. From the replica's averages: the line
  /// through (decode-only tokens, seconds) and (prefill tokens, seconds) when the prefill steps
  /// are at least twice as large and the line has a positive slope and intercept; otherwise
  /// (no decode-only step yet, or steps too alike to tell) no fixed cost and the prefill
  /// steps' seconds per token. Unmeasured: see default_tokens_per_s.
  StepCost MeasuredStepCost(int32_t replica) const ABSL_LOCKS_EXCLUDED(mu_);

  /// Forgets the hashes routed to `replica`, whose cache is gone: call it when the replica goes
  /// down and when it is re-initialised (a Pick racing with the first call may still record a
  /// prompt). Out-of-range indices are ignored.
  void Reset(int32_t replica) ABSL_LOCKS_EXCLUDED(mu_);

  /// Decisions so far, by what decided them (metrics and tests).
  struct Stats {
    int64_t routed_by_prefix = 0;    // prefix_aware: a replica holding the longest prefix won
    int64_t routed_by_load = 0;      // least_loaded; prefix_aware when the load decided
    int64_t routed_round_robin = 0;  // round_robin
    int64_t routed_only_choice = 0;  // prefix_aware with a single candidate
  };
  Stats stats() const;

  const GlobalSchedulerOptions& options() const { return options_; }
  /// Hashes remembered for `replica` (tests).
  int64_t NumRoutedHashes(int32_t replica) const;

 private:
  class RoutedHashes;  // a bounded LRU set of block hashes (global_scheduler.cc)

  // Moving averages of a kind of step's tokens and seconds (seconds 0: none measured yet).
  struct StepAverage {
    double tokens = 0;
    double seconds = 0;
  };
  // Per replica: the steps that prefill and the decode-only ones, apart.
  struct StepSamples {
    StepAverage prefill;
    StepAverage decode;
  };

  // prefix_aware among `candidates` (ready, not excluded, ascending; not empty).
  RoutingDecision PickByPrefix(absl::Span<const int32_t> prompt_token_ids,
                               absl::Span<const ReplicaSnapshot> replicas,
                               absl::Span<const int32_t> candidates) ABSL_LOCKS_EXCLUDED(mu_);
  StepCost MeasuredStepCostLocked(int32_t replica) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The cost line of one replica's averages; nullopt before its first prefill step.
  static std::optional<StepCost> FitStepCost(const StepSamples& samples);

  const GlobalSchedulerOptions options_;
  const int32_t num_replicas_;

  mutable absl::Mutex mu_;
  int32_t next_round_robin_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::unique_ptr<RoutedHashes>> routed_ ABSL_GUARDED_BY(mu_);  // per replica
  std::vector<StepSamples> steps_ ABSL_GUARDED_BY(mu_);                     // per replica
  Stats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pagoda
