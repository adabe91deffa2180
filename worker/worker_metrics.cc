#include "worker/worker_metrics.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "prometheus/text_serializer.h"

namespace pagoda {
namespace {

// Times `call` on `clock` into `metrics` (when set).
template <typename Call>
absl::Status Timed(WorkerMetrics* metrics, const Clock& clock, Call call) {
  if (metrics == nullptr) return call();
  const absl::Time start = clock.Now();
  absl::Status status = call();
  metrics->AddCollectiveSeconds(std::max(0.0, absl::ToDoubleSeconds(clock.Now() - start)));
  return status;
}

}  // namespace

const prometheus::Histogram::BucketBoundaries& WorkerMetrics::StepLatencyBuckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0};
  return *buckets;
}

const prometheus::Histogram::BucketBoundaries& WorkerMetrics::BatchTokensBuckets() {
  // vLLM's iteration_tokens_total buckets, so the two compare.
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384};
  return *buckets;
}

WorkerMetrics::WorkerMetrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      step_latency_(prometheus::BuildHistogram()
                        .Name("pagoda_worker:step_latency_seconds")
                        .Help("Wall time of one Execute (all of a plan's passes)")
                        .Register(*registry_)),
      batch_tokens_(prometheus::BuildHistogram()
                        .Name("pagoda_worker:batch_tokens")
                        .Help("Tokens computed per step (its first pass)")
                        .Register(*registry_)),
      kv_blocks_used_(prometheus::BuildGauge()
                          .Name("pagoda_worker:kv_blocks_used")
                          .Help("Device KV blocks referenced by live sequences")
                          .Register(*registry_)),
      kv_blocks_free_(prometheus::BuildGauge()
                          .Name("pagoda_worker:kv_blocks_free")
                          .Help("Device KV blocks no live sequence references")
                          .Register(*registry_)),
      model_weight_bytes_(
          prometheus::BuildGauge()
              .Name("pagoda_worker:model_weight_bytes")
              .Help("Bytes of this rank's weights, in their stored types and any forms packed "
                    "for the CPU GEMMs")
              .Register(*registry_)),
      kv_cache_bytes_(prometheus::BuildGauge()
                          .Name("pagoda_worker:kv_cache_bytes")
                          .Help("Bytes of this rank's device KV cache (keys and values, every "
                                "layer)")
                          .Register(*registry_)),
      all_reduce_seconds_(prometheus::BuildCounter()
                              .Name("pagoda_worker:all_reduce_seconds_total")
                              .Help("Seconds inside communicator collectives (all-reduce and "
                                    "all-gather)")
                              .Register(*registry_)) {}

void WorkerMetrics::SetIdentity(const std::string& replica, int32_t rank) {
  const prometheus::Labels labels = {{"replica", replica}, {"rank", absl::StrCat(rank)}};
  absl::MutexLock lock(&mu_);
  prometheus::Gauge* used = &kv_blocks_used_.Add(labels);
  prometheus::Gauge* free = &kv_blocks_free_.Add(labels);
  prometheus::Gauge* weight_bytes = &model_weight_bytes_.Add(labels);
  prometheus::Gauge* kv_bytes = &kv_cache_bytes_.Add(labels);
  if (kv_blocks_used_now_ != nullptr && kv_blocks_used_now_ != used) {
    kv_blocks_used_.Remove(kv_blocks_used_now_);
    kv_blocks_free_.Remove(kv_blocks_free_now_);
    model_weight_bytes_.Remove(model_weight_bytes_now_);
    kv_cache_bytes_.Remove(kv_cache_bytes_now_);
  }
  kv_blocks_used_now_ = used;
  kv_blocks_free_now_ = free;
  model_weight_bytes_now_ = weight_bytes;
  kv_cache_bytes_now_ = kv_bytes;
  used->Set(0);
  free->Set(0);
  weight_bytes->Set(0);
  kv_bytes->Set(0);
  step_latency_now_ = &step_latency_.Add(labels, StepLatencyBuckets());
  batch_tokens_now_ = &batch_tokens_.Add(labels, BatchTokensBuckets());
  all_reduce_seconds_now_ = &all_reduce_seconds_.Add(labels);
}

void WorkerMetrics::ObserveStep(double step_seconds, int64_t batch_tokens, int64_t kv_blocks_used,
                                int64_t kv_blocks_free) {
  absl::MutexLock lock(&mu_);
  if (step_latency_now_ == nullptr) return;
  step_latency_now_->Observe(step_seconds);
  batch_tokens_now_->Observe(static_cast<double>(batch_tokens));
  kv_blocks_used_now_->Set(static_cast<double>(kv_blocks_used));
  kv_blocks_free_now_->Set(static_cast<double>(kv_blocks_free));
}

void WorkerMetrics::SetModelBytes(int64_t weight_bytes, int64_t kv_cache_bytes) {
  absl::MutexLock lock(&mu_);
  if (model_weight_bytes_now_ == nullptr) return;
  model_weight_bytes_now_->Set(static_cast<double>(weight_bytes));
  kv_cache_bytes_now_->Set(static_cast<double>(kv_cache_bytes));
}

void WorkerMetrics::AddCollectiveSeconds(double seconds) {
  absl::MutexLock lock(&mu_);
  if (all_reduce_seconds_now_ != nullptr) all_reduce_seconds_now_->Increment(seconds);
}

std::string WorkerMetrics::Serialize() const {
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

absl::Status TimedCommunicator::AllReduceSum(float* data, int64_t count) {
  return Timed(metrics_, *clock_, [&] { return inner_->AllReduceSum(data, count); });
}

absl::Status TimedCommunicator::AllGather(const float* input, int64_t count, float* output) {
  return Timed(metrics_, *clock_, [&] { return inner_->AllGather(input, count, output); });
}

}  // namespace pagoda
