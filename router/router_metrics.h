// RouterMetrics: the router's Prometheus metrics, named after vLLM V1's under the `pagoda:`
// prefix (so vLLM dashboards and autoscalers map one-to-one) and labelled model_name and
// replica (the replica's index). One object owns the prometheus::Registry; the HTTP frontend
// serves Serialize() at GET /metrics.
//
// Where the numbers come from:
//   - per request (RequestSession, on the frontend's thread): time to first token, inter-token
//     latency (one observation per streamed delta after the first), end-to-end latency, queue
//     time (arrival to the first time an engine scheduled it), prompt and generation tokens and
//     request_success{finished_reason} once, when the request ends;
//   - per engine step (the EngineLoop's step observer): iteration_tokens_total;
//   - per routing decision (ReplicaSet, once the replica took the request):
//     routing_decisions_total{reason} (router/routing_score.h's reasons);
//   - per replica, sampled at scrape time (UpdateReplicas): running / waiting / KV usage gauges,
//     queued prefill tokens, the token rate prefix_aware routes with, readiness, and the
//     engine's cumulative counters (preemptions, prefix-cache queries and hits, restarts,
//     speculative decoding's drafts and accepted tokens, per position too),
//     turned into monotonic counters by adding the growth since the last sample: a
//     re-initialized replica's new engine starts again from zero.
//
//   RouterMetrics metrics("stories260K");
//   ReplicaSet replicas({..., .metrics = &metrics});
//   // GET /metrics:
//   metrics.UpdateReplicas(replicas);
//   std::string body = metrics.Serialize();
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "engine/engine_loop.h"
#include "engine/finish_reason.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "router/replica.h"
#include "router/routing_score.h"

namespace pagoda {

class ReplicaSet;

/// What a RequestSession reports when its request ends.
struct FinishedRequestStats {
  int32_t replica = 0;               // where it finished (or last ran)
  std::string_view finished_reason;  // "stop", "length", "abort"
  double e2e_latency_s = 0;
  int64_t num_prompt_tokens = 0;
  int64_t num_generation_tokens = 0;
};

class RouterMetrics {
 public:
  explicit RouterMetrics(std::string model_name);
  RouterMetrics(const RouterMetrics&) = delete;
  RouterMetrics& operator=(const RouterMetrics&) = delete;

  // Per request (any thread).
  void ObserveTimeToFirstToken(int32_t replica, double seconds);
  void ObserveInterTokenLatency(int32_t replica, double seconds);
  void ObserveQueueTime(int32_t replica, double seconds);
  void ObserveFinished(const FinishedRequestStats& stats);
  // Per engine step (a replica's loop thread).
  void ObserveStep(int32_t replica, const StepStats& step);
  // Router events.
  void CountFailover();
  /// A request placed on `replica` for `reason`.
  void CountRoutingDecision(int32_t replica, RoutingReason reason);
  /// `method`: the RPC's name ("Generate"); `code`: its grpc::StatusCode.
  void CountGrpcRequest(std::string_view method, int code);
  /// `route`: the route pattern ("/v1/completions"), not the raw path; `code`: the HTTP status.
  void CountHttpRequest(std::string_view route, int code);

  /// Samples one replica's status: gauges, readiness, and the growth of its engine's counters
  /// since the last sample (a new generation counts from zero).
  void UpdateReplica(int32_t replica, const ReplicaStatus& status);
  /// The step cost the global scheduler converts `replica`'s work ahead to time with.
  void SetRoutingStepCost(int32_t replica, const StepCost& cost);
  /// UpdateReplica and SetRoutingStepCost for every replica of `replicas`. Call before
  /// Serialize() on a scrape.
  void UpdateReplicas(const ReplicaSet& replicas);

  /// The Prometheus text exposition format (version 0.0.4) of every metric.
  std::string Serialize() const;
  const std::shared_ptr<prometheus::Registry>& registry() const { return registry_; }

  /// vLLM V1's buckets (vllm/v1/metrics/loggers.py).
  static const prometheus::Histogram::BucketBoundaries& TimeToFirstTokenBuckets();
  static const prometheus::Histogram::BucketBoundaries& InterTokenLatencyBuckets();
  static const prometheus::Histogram::BucketBoundaries& RequestLatencyBuckets();
  static const prometheus::Histogram::BucketBoundaries& IterationTokensBuckets();

 private:
  // One replica's metrics, made on first use.
  struct PerReplica {
    prometheus::Gauge* running = nullptr;
    prometheus::Gauge* waiting = nullptr;
    prometheus::Gauge* kv_cache_usage = nullptr;
    prometheus::Gauge* ready = nullptr;
    prometheus::Gauge* queued_prefill_tokens = nullptr;
    prometheus::Gauge* routing_tokens_per_s = nullptr;
    prometheus::Gauge* routing_step_fixed_s = nullptr;
    prometheus::Counter* prompt_tokens = nullptr;
    prometheus::Counter* generation_tokens = nullptr;
    prometheus::Counter* preemptions = nullptr;
    prometheus::Counter* prefix_queries = nullptr;
    prometheus::Counter* prefix_hits = nullptr;
    prometheus::Counter* restarts = nullptr;
    prometheus::Counter* spec_drafts = nullptr;
    prometheus::Counter* spec_draft_tokens = nullptr;
    prometheus::Counter* spec_accepted_tokens = nullptr;
    std::vector<prometheus::Counter*> spec_accepted_per_pos;  // made as positions appear
    prometheus::Histogram* ttft = nullptr;
    prometheus::Histogram* itl = nullptr;
    prometheus::Histogram* e2e = nullptr;
    prometheus::Histogram* queue = nullptr;
    prometheus::Histogram* iteration_tokens = nullptr;
  };
  // The engine counters as last sampled, per replica.
  struct LastSample {
    uint64_t generation = 0;
    int64_t preemptions = 0;
    int64_t prefix_queries = 0;
    int64_t prefix_hits = 0;
    int64_t restarts = 0;
    int64_t spec_drafts = 0;
    int64_t spec_draft_tokens = 0;
    int64_t spec_accepted_tokens = 0;
    std::vector<int64_t> spec_accepted_per_pos;
  };

  PerReplica& ForReplica(int32_t replica) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string model_name_;
  const std::shared_ptr<prometheus::Registry> registry_;
  // Families (owned by the registry).
  prometheus::Family<prometheus::Gauge>& running_;
  prometheus::Family<prometheus::Gauge>& waiting_;
  prometheus::Family<prometheus::Gauge>& kv_cache_usage_;
  prometheus::Family<prometheus::Gauge>& replica_ready_;
  prometheus::Family<prometheus::Gauge>& queued_prefill_tokens_;
  prometheus::Family<prometheus::Gauge>& routing_tokens_per_s_;
  prometheus::Family<prometheus::Gauge>& routing_step_fixed_s_;
  prometheus::Family<prometheus::Counter>& routing_decisions_;
  prometheus::Family<prometheus::Counter>& prompt_tokens_;
  prometheus::Family<prometheus::Counter>& generation_tokens_;
  prometheus::Family<prometheus::Counter>& preemptions_;
  prometheus::Family<prometheus::Counter>& prefix_queries_;
  prometheus::Family<prometheus::Counter>& prefix_hits_;
  prometheus::Family<prometheus::Counter>& request_success_;
  prometheus::Family<prometheus::Counter>& restarts_;
  prometheus::Family<prometheus::Counter>& spec_drafts_;
  prometheus::Family<prometheus::Counter>& spec_draft_tokens_;
  prometheus::Family<prometheus::Counter>& spec_accepted_tokens_;
  prometheus::Family<prometheus::Counter>& spec_accepted_per_pos_;
  prometheus::Family<prometheus::Counter>& failovers_;
  prometheus::Family<prometheus::Counter>& grpc_requests_;
  prometheus::Family<prometheus::Counter>& http_requests_;
  prometheus::Family<prometheus::Histogram>& ttft_;
  prometheus::Family<prometheus::Histogram>& itl_;
  prometheus::Family<prometheus::Histogram>& e2e_;
  prometheus::Family<prometheus::Histogram>& queue_;
  prometheus::Family<prometheus::Histogram>& iteration_tokens_;
  prometheus::Counter& failovers_total_;

  // Guards making metrics (Family::Add) and the samples; metric updates themselves are atomic.
  mutable absl::Mutex mu_;
  std::map<int32_t, PerReplica> replicas_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<int32_t, LastSample> last_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pagoda
