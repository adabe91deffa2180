// GlobalScheduler: which replica gets a request. Three policies:
//   - round_robin: the next ready replica after the last one picked;
//   - least_loaded: fewest running + waiting requests, ties by KV cache usage, then index;
//   - prefix_aware (default): the replica holding the longest prefix of the prompt, like SGLang's
//     cache-aware router but exact. A replica's score, in tokens, is the larger of
//       * what its prefix cache holds now (ReplicaSnapshot::cached_prefix_tokens, which asks the
//         replica's KVCacheManager), and
//       * the longest prefix of full blocks matching prompts recently routed to it (their block
//         hashes, HashBlockTokens with extra key 0, in a bounded LRU per replica): a burst of
//         requests sharing a new prefix arrives before the first one's prefill has cached it,
//         and should still land on one replica.
//     Ties go to the less loaded replica. Load guard: it routes by least_loaded instead when no
//     replica matches a full block, or when the best replica's load exceeds the least loaded
//     one's by more than balance_abs_threshold requests AND by more than balance_rel_threshold
//     times it.
//
// Loads come from the caller's snapshots, so concurrent Picks that see the same snapshots see the
// same loads; the routed-hash memory, by contrast, is updated under the lock of each decision, so
// the second request of a burst already sees the first one's prefix.
//
//   GlobalScheduler scheduler({.policy = RoutingPolicy::kPrefixAware, .block_size = 16},
//                             /*num_replicas=*/2);
//   std::vector<ReplicaSnapshot> snapshots = {r0.Snapshot(), r1.Snapshot()};
//   ASSIGN_OR_RETURN(int32_t replica, scheduler.Pick(prompt_token_ids, snapshots));
//   // replica failed before taking it: pick another
//   ASSIGN_OR_RETURN(replica, scheduler.Pick(prompt_token_ids, snapshots, {replica}));
//   scheduler.Reset(replica);  // the replica went down or was re-initialised
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"

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
  double kv_cache_usage = 0;  // share of device blocks referenced, [0, 1]
  /// Tokens of the prompt's prefix the replica's prefix cache holds now (full blocks, never the
  /// last token). Thread-safe; may be empty (then only the routed-hash memory counts).
  std::function<int64_t(absl::Span<const int32_t>)> cached_prefix_tokens;

  int64_t load() const { return num_running_requests + num_waiting_requests; }
};

struct GlobalSchedulerOptions {
  RoutingPolicy policy = RoutingPolicy::kPrefixAware;
  /// Tokens per KV block: the replicas' block size, so routed hashes match their cache's.
  int64_t block_size = 16;
  /// The load guard (prefix_aware): the best-prefix replica is given up only when its load
  /// (running + waiting requests) exceeds the least loaded replica's by more than 32 requests
  /// and by more than 25%. Below about 128 requests the absolute clause decides: 32 extra
  /// requests are an eighth of a default batch (max_num_seqs 256) and mostly join the running
  /// batch rather than queue, while a prefix hit saves its whole prefill. Above it the relative
  /// clause decides: queueing time grows with the load, and 25% more of it is what a prefix hit
  /// is worth trading for. SGLang uses 32 and 1.0001: the relative clause then only says
  /// "strictly more", and at heavy load a 10% imbalance (352 against 320) breaks the affinity.
  int64_t balance_abs_threshold = 32;
  double balance_rel_threshold = 1.25;
  /// Block hashes remembered per replica (LRU): 64k blocks of 16 tokens cover 1M prompt tokens,
  /// about 5 MiB per replica. 0 turns the memory off (only the exact cache query counts).
  int64_t max_routed_hashes_per_replica = 64 * 1024;

  /// InvalidArgument naming the field: block_size >= 1, thresholds >= 0, rel threshold >= 1
  /// (below 1 the relative clause always holds), 0 <= max_routed_hashes_per_replica < 2^31.
  absl::Status Validate() const;
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
  absl::StatusOr<int32_t> Pick(absl::Span<const int32_t> prompt_token_ids,
                               absl::Span<const ReplicaSnapshot> replicas,
                               absl::Span<const int32_t> exclude = {}) ABSL_LOCKS_EXCLUDED(mu_);

  /// Forgets the hashes routed to `replica`, whose cache is gone: call it when the replica goes
  /// down and when it is re-initialised (a Pick racing with the first call may still record a
  /// prompt). Out-of-range indices are ignored.
  void Reset(int32_t replica) ABSL_LOCKS_EXCLUDED(mu_);

  /// Decisions so far, by what decided them (metrics and tests).
  struct Stats {
    int64_t routed_by_prefix = 0;    // prefix_aware: the longest prefix won
    int64_t routed_by_load = 0;      // least_loaded, and prefix_aware's fallback to it
    int64_t routed_round_robin = 0;  // round_robin
  };
  Stats stats() const;

  const GlobalSchedulerOptions& options() const { return options_; }
  /// Hashes remembered for `replica` (tests).
  int64_t NumRoutedHashes(int32_t replica) const;

 private:
  class RoutedHashes;  // a bounded LRU set of block hashes (global_scheduler.cc)

  // prefix_aware among `candidates` (ready, not excluded, ascending; not empty).
  int32_t PickByPrefix(absl::Span<const int32_t> prompt_token_ids,
                       absl::Span<const ReplicaSnapshot> replicas,
                       absl::Span<const int32_t> candidates) ABSL_LOCKS_EXCLUDED(mu_);

  const GlobalSchedulerOptions options_;
  const int32_t num_replicas_;

  mutable absl::Mutex mu_;
  int32_t next_round_robin_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::unique_ptr<RoutedHashes>> routed_ ABSL_GUARDED_BY(mu_);  // per replica
  Stats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pagoda
