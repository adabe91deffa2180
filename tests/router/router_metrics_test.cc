// Checks RouterMetrics: exact values after known events, histogram buckets (vLLM's), counters
// that stay monotonic across a replica's re-initialization, the text exposition format, and
// the wiring through a ReplicaSet (sessions, step observer, scrape-time sampling).
#include "router/router_metrics.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/tokenizer/llama2c_tokenizer.h"
#include "engine/simulated_executor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/metric_family.h"
#include "router/replica_set.h"
#include "tests/testing/fake_clock.h"

namespace pagoda {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// The metric of family `name` whose labels include every pair of `labels`; null if none.
const prometheus::ClientMetric* Find(const std::vector<prometheus::MetricFamily>& families,
                                     const std::string& name, const prometheus::Labels& labels) {
  for (const prometheus::MetricFamily& family : families) {
    if (family.name != name) continue;
    for (const prometheus::ClientMetric& metric : family.metric) {
      int matched = 0;
      for (const prometheus::ClientMetric::Label& label : metric.label) {
        auto it = labels.find(label.name);
        if (it != labels.end() && it->second == label.value) ++matched;
      }
      if (matched == static_cast<int>(labels.size())) return &metric;
    }
  }
  return nullptr;
}

double CounterValue(const RouterMetrics& metrics, const std::string& name,
                    const prometheus::Labels& labels) {
  const auto families = metrics.registry()->Collect();
  const prometheus::ClientMetric* metric = Find(families, name, labels);
  return metric == nullptr ? -1 : metric->counter.value;
}

double GaugeValue(const RouterMetrics& metrics, const std::string& name,
                  const prometheus::Labels& labels) {
  const auto families = metrics.registry()->Collect();
  const prometheus::ClientMetric* metric = Find(families, name, labels);
  return metric == nullptr ? -1 : metric->gauge.value;
}

ReplicaStatus Ready(uint64_t generation, int64_t preemptions, int64_t queries, int64_t hits) {
  ReplicaStatus status{.state = ReplicaState::kReady, .generation = generation};
  status.stats.num_preemptions = preemptions;
  status.stats.prefix_cache_queries = queries;
  status.stats.prefix_cache_hits = hits;
  return status;
}

TEST(RouterMetrics, HistogramsUseVllmBucketsAndCountObservations) {
  RouterMetrics metrics("m");
  metrics.ObserveTimeToFirstToken(0, 0.03);   // le=0.04
  metrics.ObserveTimeToFirstToken(0, 0.5);    // le=0.5
  metrics.ObserveTimeToFirstToken(0, 5000);   // +Inf only
  metrics.ObserveInterTokenLatency(0, 0.02);  // le=0.025
  metrics.ObserveQueueTime(1, 0.9);           // le=1.0
  metrics.ObserveStep(1, {.num_scheduled_tokens = 100});

  const auto families = metrics.registry()->Collect();
  const auto* ttft =
      Find(families, "pagoda:time_to_first_token_seconds", {{"model_name", "m"}, {"replica", "0"}});
  ASSERT_NE(ttft, nullptr);
  EXPECT_EQ(ttft->histogram.sample_count, 3u);
  EXPECT_DOUBLE_EQ(ttft->histogram.sample_sum, 5000.53);
  // Cumulative counts per upper bound, as exposed.
  ASSERT_EQ(ttft->histogram.bucket.size(), RouterMetrics::TimeToFirstTokenBuckets().size() + 1);
  auto cumulative = [](const prometheus::ClientMetric& m, double bound) {
    for (const auto& b : m.histogram.bucket) {
      if (b.upper_bound == bound) return b.cumulative_count;
    }
    return uint64_t{999};
  };
  EXPECT_EQ(cumulative(*ttft, 0.02), 0u);
  EXPECT_EQ(cumulative(*ttft, 0.04), 1u);
  EXPECT_EQ(cumulative(*ttft, 0.5), 2u);
  EXPECT_EQ(cumulative(*ttft, 2560.0), 2u);

  const auto* itl = Find(families, "pagoda:inter_token_latency_seconds", {{"replica", "0"}});
  ASSERT_NE(itl, nullptr);
  EXPECT_EQ(cumulative(*itl, 0.01), 0u);
  EXPECT_EQ(cumulative(*itl, 0.025), 1u);
  const auto* queue = Find(families, "pagoda:request_queue_time_seconds", {{"replica", "1"}});
  ASSERT_NE(queue, nullptr);
  EXPECT_EQ(cumulative(*queue, 0.8), 0u);
  EXPECT_EQ(cumulative(*queue, 1.0), 1u);
  const auto* tokens = Find(families, "pagoda:iteration_tokens_total", {{"replica", "1"}});
  ASSERT_NE(tokens, nullptr);
  EXPECT_EQ(cumulative(*tokens, 64), 0u);
  EXPECT_EQ(cumulative(*tokens, 128), 1u);
  EXPECT_DOUBLE_EQ(tokens->histogram.sample_sum, 100);
}

TEST(RouterMetrics, FinishedRequestsCountTokensOnceAndByReason) {
  RouterMetrics metrics("m");
  metrics.ObserveFinished({.replica = 0,
                           .finished_reason = "stop",
                           .e2e_latency_s = 1.2,
                           .num_prompt_tokens = 7,
                           .num_generation_tokens = 20});
  metrics.ObserveFinished({.replica = 0,
                           .finished_reason = "length",
                           .e2e_latency_s = 0.1,
                           .num_prompt_tokens = 3,
                           .num_generation_tokens = 5});
  metrics.ObserveFinished({.replica = 1, .finished_reason = "stop", .num_prompt_tokens = 1});
  const prometheus::Labels r0 = {{"model_name", "m"}, {"replica", "0"}};
  EXPECT_EQ(CounterValue(metrics, "pagoda:prompt_tokens_total", r0), 10);
  EXPECT_EQ(CounterValue(metrics, "pagoda:generation_tokens_total", r0), 25);
  EXPECT_EQ(CounterValue(metrics, "pagoda:request_success_total",
                         {{"replica", "0"}, {"finished_reason", "stop"}}),
            1);
  EXPECT_EQ(CounterValue(metrics, "pagoda:request_success_total",
                         {{"replica", "0"}, {"finished_reason", "length"}}),
            1);
  EXPECT_EQ(CounterValue(metrics, "pagoda:request_success_total",
                         {{"replica", "1"}, {"finished_reason", "stop"}}),
            1);
  const auto families = metrics.registry()->Collect();
  const auto* e2e = Find(families, "pagoda:e2e_request_latency_seconds", r0);
  ASSERT_NE(e2e, nullptr);
  EXPECT_EQ(e2e->histogram.sample_count, 2u);
}

TEST(RouterMetrics, EngineCountersStayMonotonicAcrossReinitialization) {
  RouterMetrics metrics("m");
  const prometheus::Labels r0 = {{"replica", "0"}};
  metrics.UpdateReplica(0, Ready(/*generation=*/1, 5, 100, 40));
  metrics.UpdateReplica(0, Ready(1, 7, 150, 60));
  EXPECT_EQ(CounterValue(metrics, "pagoda:num_preemptions_total", r0), 7);
  EXPECT_EQ(CounterValue(metrics, "pagoda:prefix_cache_queries_total", r0), 150);
  EXPECT_EQ(CounterValue(metrics, "pagoda:prefix_cache_hits_total", r0), 60);
  EXPECT_EQ(GaugeValue(metrics, "pagoda:replica_ready", r0), 1);

  // Down: no engine, zero stats; nothing is lost or added.
  ReplicaStatus down{.state = ReplicaState::kDown, .generation = 1};
  metrics.UpdateReplica(0, down);
  EXPECT_EQ(GaugeValue(metrics, "pagoda:replica_ready", r0), 0);
  EXPECT_EQ(CounterValue(metrics, "pagoda:num_preemptions_total", r0), 7);

  // Re-initialized: the new engine counts from zero again.
  ReplicaStatus restarted = Ready(/*generation=*/2, 2, 30, 10);
  restarted.num_restarts = 1;
  metrics.UpdateReplica(0, restarted);
  EXPECT_EQ(CounterValue(metrics, "pagoda:num_preemptions_total", r0), 9);
  EXPECT_EQ(CounterValue(metrics, "pagoda:prefix_cache_queries_total", r0), 180);
  EXPECT_EQ(CounterValue(metrics, "pagoda:prefix_cache_hits_total", r0), 70);
  EXPECT_EQ(CounterValue(metrics, "pagoda:replica_restarts_total", r0), 1);
  metrics.UpdateReplica(0, restarted);  // the same sample again adds nothing
  EXPECT_EQ(CounterValue(metrics, "pagoda:num_preemptions_total", r0), 9);
}

TEST(RouterMetrics, SpeculativeDecodingCountersUseVllmNamesAndSurviveReinitialization) {
  RouterMetrics metrics("m");
  const prometheus::Labels r1 = {{"replica", "1"}};
  ReplicaStatus status = Ready(/*generation=*/1, 0, 0, 0);
  status.stats.spec_num_drafts = 10;
  status.stats.spec_num_draft_tokens = 40;
  status.stats.spec_num_accepted_tokens = 25;
  status.stats.spec_num_accepted_tokens_per_pos = {9, 8, 5, 3};
  metrics.UpdateReplica(1, status);
  EXPECT_EQ(CounterValue(metrics, "pagoda:spec_decode_num_drafts_total", r1), 10);
  EXPECT_EQ(CounterValue(metrics, "pagoda:spec_decode_num_draft_tokens_total", r1), 40);
  EXPECT_EQ(CounterValue(metrics, "pagoda:spec_decode_num_accepted_tokens_total", r1), 25);
  EXPECT_EQ(CounterValue(metrics, "pagoda:spec_decode_num_accepted_tokens_per_pos_total",
                         {{"replica", "1"}, {"position", "2"}}),
            5);
  // A new engine (generation 2) counts from zero; its growth adds to the totals.
  status.generation = 2;
  status.stats.spec_num_drafts = 1;
  status.stats.spec_num_draft_tokens = 4;
  status.stats.spec_num_accepted_tokens = 1;
  status.stats.spec_num_accepted_tokens_per_pos = {1};
  metrics.UpdateReplica(1, status);
  EXPECT_EQ(CounterValue(metrics, "pagoda:spec_decode_num_drafts_total", r1), 11);
  EXPECT_EQ(CounterValue(metrics, "pagoda:spec_decode_num_accepted_tokens_total", r1), 26);
  EXPECT_EQ(CounterValue(metrics, "pagoda:spec_decode_num_accepted_tokens_per_pos_total",
                         {{"replica", "1"}, {"position", "0"}}),
            10);
  EXPECT_EQ(CounterValue(metrics, "pagoda:spec_decode_num_accepted_tokens_per_pos_total",
                         {{"replica", "1"}, {"position", "3"}}),
            3);
}

TEST(RouterMetrics, GaugesFollowTheLatestSample) {
  RouterMetrics metrics("m");
  ReplicaStatus status = Ready(1, 0, 0, 0);
  status.stats.num_running_requests = 3;
  status.stats.num_waiting_requests = 2;
  status.stats.num_swapped_requests = 1;
  status.stats.kv_cache_usage = 0.25;
  status.stats.num_queued_prefill_tokens = 417;
  metrics.UpdateReplica(2, status);
  metrics.SetRoutingStepCost(2, StepCost{.fixed_s = 0.125, .per_token_s = 1 / 1024.0});
  const prometheus::Labels r2 = {{"model_name", "m"}, {"replica", "2"}};
  EXPECT_EQ(GaugeValue(metrics, "pagoda:num_requests_running", r2), 3);
  EXPECT_EQ(GaugeValue(metrics, "pagoda:num_requests_waiting", r2), 3);
  EXPECT_EQ(GaugeValue(metrics, "pagoda:kv_cache_usage_perc", r2), 0.25);
  EXPECT_EQ(GaugeValue(metrics, "pagoda:num_queued_prefill_tokens", r2), 417);
  EXPECT_EQ(GaugeValue(metrics, "pagoda:routing_tokens_per_second", r2), 1024);
  EXPECT_EQ(GaugeValue(metrics, "pagoda:routing_step_fixed_seconds", r2), 0.125);
  metrics.UpdateReplica(2, ReplicaStatus{.state = ReplicaState::kInitializing});
  EXPECT_EQ(GaugeValue(metrics, "pagoda:num_requests_running", r2), 0);
  EXPECT_EQ(GaugeValue(metrics, "pagoda:num_queued_prefill_tokens", r2), 0);
  EXPECT_EQ(GaugeValue(metrics, "pagoda:replica_ready", r2), 0);
}

TEST(RouterMetrics, CountsRequestsByFrontendAndCode) {
  RouterMetrics metrics("m");
  metrics.CountGrpcRequest("Generate", 0);
  metrics.CountGrpcRequest("Generate", 0);
  metrics.CountGrpcRequest("Generate", 3);
  metrics.CountHttpRequest("/v1/completions", 200);
  metrics.CountFailover();
  metrics.CountRoutingDecision(1, RoutingReason::kPrefixHit);
  metrics.CountRoutingDecision(1, RoutingReason::kPrefixHit);
  metrics.CountRoutingDecision(0, RoutingReason::kLoad);
  EXPECT_EQ(CounterValue(metrics, "pagoda:routing_decisions_total",
                         {{"model_name", "m"}, {"replica", "1"}, {"reason", "prefix_hit"}}),
            2);
  EXPECT_EQ(CounterValue(metrics, "pagoda:routing_decisions_total",
                         {{"replica", "0"}, {"reason", "load"}}),
            1);
  EXPECT_EQ(CounterValue(metrics, "pagoda:routing_decisions_total",
                         {{"replica", "0"}, {"reason", "prefix_hit"}}),
            -1);  // never counted, never exported
  EXPECT_EQ(
      CounterValue(metrics, "pagoda:grpc_requests_total", {{"method", "Generate"}, {"code", "OK"}}),
      2);
  EXPECT_EQ(CounterValue(metrics, "pagoda:grpc_requests_total",
                         {{"method", "Generate"}, {"code", "INVALID_ARGUMENT"}}),
            1);
  EXPECT_EQ(CounterValue(metrics, "pagoda:http_requests_total",
                         {{"route", "/v1/completions"}, {"code", "200"}}),
            1);
  EXPECT_EQ(CounterValue(metrics, "pagoda:request_failovers_total", {{"model_name", "m"}}), 1);
}

TEST(RouterMetrics, SerializesTheTextExpositionFormat) {
  RouterMetrics metrics("stories");
  metrics.UpdateReplica(0, Ready(1, 1, 2, 1));
  metrics.ObserveTimeToFirstToken(0, 0.2);
  metrics.ObserveFinished({.replica = 0, .finished_reason = "stop", .num_prompt_tokens = 4});
  const std::string text = metrics.Serialize();
  EXPECT_THAT(text, HasSubstr("# TYPE pagoda:num_requests_running gauge\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE pagoda:prompt_tokens_total counter\n"));
  EXPECT_THAT(text,
              HasSubstr("pagoda:prompt_tokens_total{model_name=\"stories\",replica=\"0\"} 4\n"));
  // Counters keep their names as given: no second _total.
  EXPECT_THAT(text, Not(HasSubstr("_total_total")));
  EXPECT_THAT(text, HasSubstr("# TYPE pagoda:time_to_first_token_seconds histogram\n"));
  EXPECT_THAT(text, HasSubstr("pagoda:time_to_first_token_seconds_bucket{model_name=\"stories\","
                              "replica=\"0\",le=\"0.25\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("pagoda:time_to_first_token_seconds_count{model_name=\"stories\","
                              "replica=\"0\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("pagoda:request_success_total{finished_reason=\"stop\","
                              "model_name=\"stories\",replica=\"0\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("pagoda:replica_ready{model_name=\"stories\",replica=\"0\"} 1\n"));
}

std::unique_ptr<Tokenizer> LoadStories() {
  auto vocab =
      ReadLlama2cTokenizer(std::string(PAGODA_SHARED_DIR) + "/models/stories260K/tok512.bin", 512);
  if (!vocab.ok()) return nullptr;
  auto files = ConvertLlama2cTokenizer(*vocab, 512);
  if (!files.ok()) return nullptr;
  auto tokenizer =
      Tokenizer::FromJson(files->tokenizer_json, files->tokenizer_config_json, "stories260K");
  return tokenizer.ok() ? std::move(tokenizer).value() : nullptr;
}

TEST(RouterMetrics, ReplicaSetReportsRequestsStepsAndReplicas) {
  std::unique_ptr<Tokenizer> tokenizer = LoadStories();
  ASSERT_NE(tokenizer, nullptr);
  RouterMetrics metrics("stories");
  const SimulatedExecutorOptions simulated{
      .info = {.num_device_blocks = 64, .block_size = 16, .max_model_len = 256, .vocab_size = 512}};
  ReplicaSetOptions options{.metrics = &metrics};
  options.replicas.push_back(
      {.index = 0,
       .make_executor = [=](uint64_t) -> absl::StatusOr<std::unique_ptr<Executor>> {
         return std::make_unique<SimulatedExecutor>(simulated);
       },
       .engine = {.max_model_len = 256},
       .tokenizer = tokenizer.get(),
       .health_interval = absl::Milliseconds(20)});
  ReplicaSet replicas(std::move(options));
  ASSERT_TRUE(replicas.WaitUntilReady(1, absl::Seconds(30)));

  const std::vector<int32_t> prompt = tokenizer->Encode("Once upon a time");
  for (int i = 0; i < 2; ++i) {
    EngineRequest request{.request_id = "r" + std::to_string(i),
                          .prompt_token_ids = prompt,
                          .arrival_time_s = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch())};
    request.params.max_tokens = 6;
    request.params.ignore_eos = true;
    auto session = replicas.Submit(std::move(request));
    ASSERT_TRUE(session.ok()) << session.status();
    int num_deltas = 0;
    while (auto delta = (*session)->Next(absl::Seconds(10))) ++num_deltas;
    EXPECT_GE(num_deltas, 1);
  }
  metrics.UpdateReplicas(replicas);

  const prometheus::Labels r0 = {{"model_name", "stories"}, {"replica", "0"}};
  EXPECT_EQ(CounterValue(metrics, "pagoda:prompt_tokens_total", r0),
            2 * static_cast<double>(prompt.size()));
  EXPECT_EQ(CounterValue(metrics, "pagoda:generation_tokens_total", r0), 12);
  EXPECT_EQ(CounterValue(metrics, "pagoda:request_success_total",
                         {{"replica", "0"}, {"finished_reason", "length"}}),
            2);
  EXPECT_EQ(GaugeValue(metrics, "pagoda:replica_ready", r0), 1);
  EXPECT_EQ(GaugeValue(metrics, "pagoda:num_requests_running", r0), 0);
  EXPECT_EQ(GaugeValue(metrics, "pagoda:num_queued_prefill_tokens", r0), 0);
  // prefix_aware (the default) with one replica: each placement was its only choice.
  EXPECT_EQ(CounterValue(metrics, "pagoda:routing_decisions_total",
                         {{"replica", "0"}, {"reason", "only_choice"}}),
            2);
  // The steps were measured: the cost routing uses is theirs, not the default.
  EXPECT_GT(GaugeValue(metrics, "pagoda:routing_tokens_per_second", r0), 0);
  EXPECT_NE(GaugeValue(metrics, "pagoda:routing_tokens_per_second", r0),
            GlobalSchedulerOptions{}.default_tokens_per_s);
  const auto families = metrics.registry()->Collect();
  for (const char* name :
       {"pagoda:time_to_first_token_seconds", "pagoda:e2e_request_latency_seconds",
        "pagoda:request_queue_time_seconds"}) {
    const auto* histogram = Find(families, name, r0);
    ASSERT_NE(histogram, nullptr) << name;
    EXPECT_EQ(histogram->histogram.sample_count, 2u) << name;
  }
  const auto* itl = Find(families, "pagoda:inter_token_latency_seconds", r0);
  ASSERT_NE(itl, nullptr);
  EXPECT_GE(itl->histogram.sample_count, 2u);  // at least one later delta per request
  const auto* steps = Find(families, "pagoda:iteration_tokens_total", r0);
  ASSERT_NE(steps, nullptr);
  // Every prompt token and every decode token (the first output comes from the prefill).
  EXPECT_DOUBLE_EQ(steps->histogram.sample_sum, 2 * static_cast<double>(prompt.size()) + 2 * 5);
}

// The sessions measure latencies on the ReplicaSet's clock, from the arrival time the frontend
// stamps on it: with a FakeClock the figures are the fake time that passed.
TEST(RouterMetrics, LatenciesAreMeasuredOnTheReplicaSetsClock) {
  std::unique_ptr<Tokenizer> tokenizer = LoadStories();
  ASSERT_NE(tokenizer, nullptr);
  RouterMetrics metrics("stories");
  testing::FakeClock clock;
  const SimulatedExecutorOptions simulated{
      .info = {.num_device_blocks = 64, .block_size = 16, .max_model_len = 256, .vocab_size = 512}};
  ReplicaSetOptions options{.metrics = &metrics, .clock = &clock};
  options.replicas.push_back(
      {.index = 0,
       .make_executor = [=](uint64_t) -> absl::StatusOr<std::unique_ptr<Executor>> {
         return std::make_unique<SimulatedExecutor>(simulated);
       },
       .engine = {.max_model_len = 256},
       .tokenizer = tokenizer.get(),
       .health_interval = absl::Milliseconds(20)});
  ReplicaSet replicas(std::move(options));
  ASSERT_TRUE(clock.BlockUntilWaits(1));  // the supervisor waits for its first health tick
  clock.Advance(absl::Milliseconds(20));
  ASSERT_TRUE(clock.BlockUntilWaits(2));  // it started the replica and waits again
  ASSERT_EQ(replicas.replica(0).state(), ReplicaState::kReady);

  EngineRequest request{.request_id = "r",
                        .prompt_token_ids = tokenizer->Encode("Once upon a time"),
                        .arrival_time_s = clock.NowUnixSeconds()};
  request.params.max_tokens = 4;
  request.params.ignore_eos = true;
  auto session = replicas.Submit(std::move(request));
  ASSERT_TRUE(session.ok()) << session.status();
  clock.Advance(absl::Milliseconds(300));
  while (auto delta = (*session)->Next(absl::Hours(1))) {
  }

  const prometheus::Labels r0 = {{"model_name", "stories"}, {"replica", "0"}};
  const auto families = metrics.registry()->Collect();
  for (const char* name :
       {"pagoda:time_to_first_token_seconds", "pagoda:e2e_request_latency_seconds"}) {
    const auto* histogram = Find(families, name, r0);
    ASSERT_NE(histogram, nullptr) << name;
    EXPECT_EQ(histogram->histogram.sample_count, 1u) << name;
    // Unix seconds as doubles resolve ~2e-7 s today.
    EXPECT_NEAR(histogram->histogram.sample_sum, 0.3, 1e-6) << name;
  }
  const auto* itl = Find(families, "pagoda:inter_token_latency_seconds", r0);
  ASSERT_NE(itl, nullptr);
  EXPECT_EQ(itl->histogram.sample_sum, 0.0);  // no time passed between the deltas
}

}  // namespace
}  // namespace pagoda
