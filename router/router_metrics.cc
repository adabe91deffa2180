#include "router/router_metrics.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "prometheus/text_serializer.h"
#include "router/replica_set.h"

namespace pagoda {
namespace {

std::string_view GrpcCodeName(int code) {
  static constexpr std::string_view kNames[] = {"OK",
                                                "CANCELLED",
                                                "UNKNOWN",
                                                "INVALID_ARGUMENT",
                                                "DEADLINE_EXCEEDED",
                                                "NOT_FOUND",
                                                "ALREADY_EXISTS",
                                                "PERMISSION_DENIED",
                                                "RESOURCE_EXHAUSTED",
                                                "FAILED_PRECONDITION",
                                                "ABORTED",
                                                "OUT_OF_RANGE",
                                                "UNIMPLEMENTED",
                                                "INTERNAL",
                                                "UNAVAILABLE",
                                                "DATA_LOSS",
                                                "UNAUTHENTICATED"};
  if (code < 0 || code >= static_cast<int>(std::size(kNames))) return "UNKNOWN";
  return kNames[code];
}

// Adds the growth of a cumulative engine counter; `last` is reset by a new generation.
void AddGrowth(prometheus::Counter* counter, int64_t now, int64_t& last) {
  if (now > last) counter->Increment(static_cast<double>(now - last));
  last = now;
}

}  // namespace

const prometheus::Histogram::BucketBoundaries& RouterMetrics::TimeToFirstTokenBuckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,  0.25,  0.5,   0.75,
      1.0,   2.5,   5.0,  7.5,  10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0};
  return *buckets;
}

const prometheus::Histogram::BucketBoundaries& RouterMetrics::InterTokenLatencyBuckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2,  0.3,  0.4, 0.5,
      0.75, 1.0,   2.5,  5.0,   7.5, 10.0, 20.0, 40.0, 80.0};
  return *buckets;
}

const prometheus::Histogram::BucketBoundaries& RouterMetrics::RequestLatencyBuckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      0.3,  0.5,  0.8,  1.0,  1.5,   2.0,   2.5,   5.0,   10.0,   15.0,  20.0,
      30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};
  return *buckets;
}

const prometheus::Histogram::BucketBoundaries& RouterMetrics::IterationTokensBuckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384};
  return *buckets;
}

RouterMetrics::RouterMetrics(std::string model_name)
    : model_name_(std::move(model_name)),
      registry_(std::make_shared<prometheus::Registry>()),
      running_(prometheus::BuildGauge()
                   .Name("pagoda:num_requests_running")
                   .Help("Requests running on the replica's engine")
                   .Register(*registry_)),
      waiting_(prometheus::BuildGauge()
                   .Name("pagoda:num_requests_waiting")
                   .Help("Requests waiting to be scheduled (swapped ones included)")
                   .Register(*registry_)),
      kv_cache_usage_(prometheus::BuildGauge()
                          .Name("pagoda:kv_cache_usage_perc")
                          .Help("KV-cache usage; 1 means 100 percent")
                          .Register(*registry_)),
      replica_ready_(prometheus::BuildGauge()
                         .Name("pagoda:replica_ready")
                         .Help("1 while the replica serves requests, else 0")
                         .Register(*registry_)),
      queued_prefill_tokens_(
          prometheus::BuildGauge()
              .Name("pagoda:num_queued_prefill_tokens")
              .Help("Prompt tokens queued on the replica and not computed yet (before cache hits)")
              .Register(*registry_)),
      routing_tokens_per_s_(
          prometheus::BuildGauge()
              .Name("pagoda:routing_tokens_per_second")
              .Help("Tokens per second of the replica's steps beyond their fixed cost, as "
                    "prefix_aware routing uses it")
              .Register(*registry_)),
      routing_step_fixed_s_(
          prometheus::BuildGauge()
              .Name("pagoda:routing_step_fixed_seconds")
              .Help("Fixed cost of one of the replica's steps, whatever its tokens, as "
                    "prefix_aware routing uses it")
              .Register(*registry_)),
      routing_decisions_(prometheus::BuildCounter()
                             .Name("pagoda:routing_decisions_total")
                             .Help("Requests placed on the replica, by what decided the routing")
                             .Register(*registry_)),
      prompt_tokens_(prometheus::BuildCounter()
                         .Name("pagoda:prompt_tokens_total")
                         .Help("Prompt tokens of finished requests (once per request)")
                         .Register(*registry_)),
      generation_tokens_(prometheus::BuildCounter()
                             .Name("pagoda:generation_tokens_total")
                             .Help("Generated tokens of finished requests")
                             .Register(*registry_)),
      preemptions_(prometheus::BuildCounter()
                       .Name("pagoda:num_preemptions_total")
                       .Help("Sequences preempted by the engine")
                       .Register(*registry_)),
      prefix_queries_(prometheus::BuildCounter()
                          .Name("pagoda:prefix_cache_queries_total")
                          .Help("Prefix cache queries, in tokens")
                          .Register(*registry_)),
      prefix_hits_(prometheus::BuildCounter()
                       .Name("pagoda:prefix_cache_hits_total")
                       .Help("Prefix cache hits, in tokens")
                       .Register(*registry_)),
      request_success_(prometheus::BuildCounter()
                           .Name("pagoda:request_success_total")
                           .Help("Finished requests by finish reason")
                           .Register(*registry_)),
      restarts_(prometheus::BuildCounter()
                    .Name("pagoda:replica_restarts_total")
                    .Help("Re-initializations of the replica after its first start")
                    .Register(*registry_)),
      spec_drafts_(prometheus::BuildCounter()
                       .Name("pagoda:spec_decode_num_drafts_total")
                       .Help("Speculative decoding: verifications of a sequence's drafts")
                       .Register(*registry_)),
      spec_draft_tokens_(prometheus::BuildCounter()
                             .Name("pagoda:spec_decode_num_draft_tokens_total")
                             .Help("Speculative decoding: draft tokens proposed")
                             .Register(*registry_)),
      spec_accepted_tokens_(prometheus::BuildCounter()
                                .Name("pagoda:spec_decode_num_accepted_tokens_total")
                                .Help("Speculative decoding: draft tokens accepted")
                                .Register(*registry_)),
      spec_accepted_per_pos_(
          prometheus::BuildCounter()
              .Name("pagoda:spec_decode_num_accepted_tokens_per_pos_total")
              .Help("Speculative decoding: draft tokens accepted, by position in the proposal")
              .Register(*registry_)),
      failovers_(prometheus::BuildCounter()
                     .Name("pagoda:request_failovers_total")
                     .Help("Requests moved to another replica after theirs failed")
                     .Register(*registry_)),
      grpc_requests_(prometheus::BuildCounter()
                         .Name("pagoda:grpc_requests_total")
                         .Help("pagoda.v1.Generation calls by method and status code")
                         .Register(*registry_)),
      http_requests_(prometheus::BuildCounter()
                         .Name("pagoda:http_requests_total")
                         .Help("HTTP requests by route and status code")
                         .Register(*registry_)),
      ttft_(prometheus::BuildHistogram()
                .Name("pagoda:time_to_first_token_seconds")
                .Help("Time from arrival to the first streamed token")
                .Register(*registry_)),
      itl_(prometheus::BuildHistogram()
               .Name("pagoda:inter_token_latency_seconds")
               .Help("Time between successive streamed deltas of a request")
               .Register(*registry_)),
      e2e_(prometheus::BuildHistogram()
               .Name("pagoda:e2e_request_latency_seconds")
               .Help("Time from arrival to the last delta")
               .Register(*registry_)),
      queue_(prometheus::BuildHistogram()
                 .Name("pagoda:request_queue_time_seconds")
                 .Help("Time from arrival to the first time an engine scheduled the request")
                 .Register(*registry_)),
      iteration_tokens_(prometheus::BuildHistogram()
                            .Name("pagoda:iteration_tokens_total")
                            .Help("Tokens scheduled per engine step")
                            .Register(*registry_)),
      failovers_total_(failovers_.Add({{"model_name", model_name_}})) {}

RouterMetrics::PerReplica& RouterMetrics::ForReplica(int32_t replica) {
  auto [it, inserted] = replicas_.try_emplace(replica);
  PerReplica& r = it->second;
  if (!inserted) return r;
  const prometheus::Labels labels = {{"model_name", model_name_},
                                     {"replica", absl::StrCat(replica)}};
  r.running = &running_.Add(labels);
  r.waiting = &waiting_.Add(labels);
  r.kv_cache_usage = &kv_cache_usage_.Add(labels);
  r.ready = &replica_ready_.Add(labels);
  r.queued_prefill_tokens = &queued_prefill_tokens_.Add(labels);
  r.routing_tokens_per_s = &routing_tokens_per_s_.Add(labels);
  r.routing_step_fixed_s = &routing_step_fixed_s_.Add(labels);
  r.prompt_tokens = &prompt_tokens_.Add(labels);
  r.generation_tokens = &generation_tokens_.Add(labels);
  r.preemptions = &preemptions_.Add(labels);
  r.prefix_queries = &prefix_queries_.Add(labels);
  r.prefix_hits = &prefix_hits_.Add(labels);
  r.restarts = &restarts_.Add(labels);
  r.spec_drafts = &spec_drafts_.Add(labels);
  r.spec_draft_tokens = &spec_draft_tokens_.Add(labels);
  r.spec_accepted_tokens = &spec_accepted_tokens_.Add(labels);
  r.ttft = &ttft_.Add(labels, TimeToFirstTokenBuckets());
  r.itl = &itl_.Add(labels, InterTokenLatencyBuckets());
  r.e2e = &e2e_.Add(labels, RequestLatencyBuckets());
  r.queue = &queue_.Add(labels, RequestLatencyBuckets());
  r.iteration_tokens = &iteration_tokens_.Add(labels, IterationTokensBuckets());
  return r;
}

void RouterMetrics::ObserveTimeToFirstToken(int32_t replica, double seconds) {
  absl::MutexLock lock(&mu_);
  ForReplica(replica).ttft->Observe(seconds);
}

void RouterMetrics::ObserveInterTokenLatency(int32_t replica, double seconds) {
  absl::MutexLock lock(&mu_);
  ForReplica(replica).itl->Observe(seconds);
}

void RouterMetrics::ObserveQueueTime(int32_t replica, double seconds) {
  absl::MutexLock lock(&mu_);
  ForReplica(replica).queue->Observe(std::max(0.0, seconds));
}

void RouterMetrics::ObserveFinished(const FinishedRequestStats& stats) {
  {
    absl::MutexLock lock(&mu_);
    PerReplica& r = ForReplica(stats.replica);
    r.e2e->Observe(stats.e2e_latency_s);
    r.prompt_tokens->Increment(static_cast<double>(stats.num_prompt_tokens));
    r.generation_tokens->Increment(static_cast<double>(stats.num_generation_tokens));
  }
  request_success_
      .Add({{"model_name", model_name_},
            {"replica", absl::StrCat(stats.replica)},
            {"finished_reason", std::string(stats.finished_reason)}})
      .Increment();
}

void RouterMetrics::ObserveStep(int32_t replica, const StepStats& step) {
  absl::MutexLock lock(&mu_);
  ForReplica(replica).iteration_tokens->Observe(static_cast<double>(step.num_scheduled_tokens));
}

void RouterMetrics::CountFailover() { failovers_total_.Increment(); }

void RouterMetrics::CountRoutingDecision(int32_t replica, RoutingReason reason) {
  routing_decisions_
      .Add({{"model_name", model_name_},
            {"replica", absl::StrCat(replica)},
            {"reason", std::string(RoutingReasonName(reason))}})
      .Increment();
}

void RouterMetrics::SetRoutingStepCost(int32_t replica, const StepCost& cost) {
  absl::MutexLock lock(&mu_);
  PerReplica& r = ForReplica(replica);
  r.routing_tokens_per_s->Set(cost.per_token_s > 0 ? 1 / cost.per_token_s : 0);
  r.routing_step_fixed_s->Set(cost.fixed_s);
}

void RouterMetrics::CountGrpcRequest(std::string_view method, int code) {
  grpc_requests_.Add({{"method", std::string(method)}, {"code", std::string(GrpcCodeName(code))}})
      .Increment();
}

void RouterMetrics::CountHttpRequest(std::string_view route, int code) {
  http_requests_.Add({{"route", std::string(route)}, {"code", absl::StrCat(code)}}).Increment();
}

void RouterMetrics::UpdateReplica(int32_t replica, const ReplicaStatus& status) {
  absl::MutexLock lock(&mu_);
  PerReplica& r = ForReplica(replica);
  const bool ready = status.state == ReplicaState::kReady;
  const SchedulerStats& stats = status.stats;
  r.ready->Set(ready ? 1 : 0);
  r.running->Set(ready ? static_cast<double>(stats.num_running_requests) : 0);
  r.waiting->Set(
      ready ? static_cast<double>(stats.num_waiting_requests + stats.num_swapped_requests) : 0);
  r.kv_cache_usage->Set(ready ? stats.kv_cache_usage : 0);
  r.queued_prefill_tokens->Set(ready ? static_cast<double>(stats.num_queued_prefill_tokens) : 0);
  LastSample& last = last_[replica];
  AddGrowth(r.restarts, status.num_restarts, last.restarts);
  // A replica that is not ready reports no engine: its counters stay where they were.
  if (!ready) return;
  if (status.generation != last.generation) {
    // A new engine counts from zero.
    last.generation = status.generation;
    last.preemptions = 0;
    last.prefix_queries = 0;
    last.prefix_hits = 0;
    last.spec_drafts = 0;
    last.spec_draft_tokens = 0;
    last.spec_accepted_tokens = 0;
    last.spec_accepted_per_pos.clear();
  }
  AddGrowth(r.preemptions, stats.num_preemptions, last.preemptions);
  AddGrowth(r.prefix_queries, stats.prefix_cache_queries, last.prefix_queries);
  AddGrowth(r.prefix_hits, stats.prefix_cache_hits, last.prefix_hits);
  AddGrowth(r.spec_drafts, stats.spec_num_drafts, last.spec_drafts);
  AddGrowth(r.spec_draft_tokens, stats.spec_num_draft_tokens, last.spec_draft_tokens);
  AddGrowth(r.spec_accepted_tokens, stats.spec_num_accepted_tokens, last.spec_accepted_tokens);
  const std::vector<int64_t>& per_pos = stats.spec_num_accepted_tokens_per_pos;
  while (r.spec_accepted_per_pos.size() < per_pos.size()) {
    r.spec_accepted_per_pos.push_back(
        &spec_accepted_per_pos_.Add({{"model_name", model_name_},
                                     {"replica", absl::StrCat(replica)},
                                     {"position", absl::StrCat(r.spec_accepted_per_pos.size())}}));
  }
  last.spec_accepted_per_pos.resize(std::max(last.spec_accepted_per_pos.size(), per_pos.size()), 0);
  for (size_t i = 0; i < per_pos.size(); ++i) {
    AddGrowth(r.spec_accepted_per_pos[i], per_pos[i], last.spec_accepted_per_pos[i]);
  }
}

void RouterMetrics::UpdateReplicas(const ReplicaSet& replicas) {
  for (int32_t i = 0; i < replicas.num_replicas(); ++i) {
    UpdateReplica(i, replicas.replica(i).status());
    SetRoutingStepCost(i, replicas.scheduler().MeasuredStepCost(i));
  }
}

std::string RouterMetrics::Serialize() const {
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

}  // namespace pagoda
