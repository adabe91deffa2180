// WorkerMetrics: one pagoda-worker's Prometheus metrics (`pagoda_worker:` prefix), labelled
// replica (the name the router's Init gives, "replica-0") and rank (the tensor-parallel rank):
// step latency and tokens per step, KV blocks held by live sequences and free, the bytes of the
// rank's weights and KV cache, and the time spent inside communicator collectives. The
// WorkerRuntime updates them per Execute; the worker's /metrics endpoint serves Serialize().
//
// TimedCommunicator is the decorator that feeds the collective time: it wraps a rank's
// Communicator and adds the time of every AllReduceSum and AllGather on its clock.
//
//   WorkerMetrics metrics;
//   WorkerRuntime runtime({.metrics = &metrics});   // labels set by each Init
//   std::string body = metrics.Serialize();
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "worker/communicator.h"

namespace pagoda {

class WorkerMetrics {
 public:
  WorkerMetrics();
  WorkerMetrics(const WorkerMetrics&) = delete;
  WorkerMetrics& operator=(const WorkerMetrics&) = delete;

  /// Labels the observations that follow (each Init). Counters and histograms of a label set
  /// seen before continue where they were; the KV gauges of a previous one are removed.
  void SetIdentity(const std::string& replica, int32_t rank);
  /// The memory the current identity's model takes: weight bytes (this rank's shard, in their
  /// stored types) and KV cache bytes (device blocks, keys and values of every layer).
  void SetModelBytes(int64_t weight_bytes, int64_t kv_cache_bytes);

  /// One applied step: its wall time, the tokens it computed (first pass), and the device
  /// blocks referenced by live sequences / not referenced afterwards.
  void ObserveStep(double step_seconds, int64_t batch_tokens, int64_t kv_blocks_used,
                   int64_t kv_blocks_free);
  /// Time inside a collective (TimedCommunicator).
  void AddCollectiveSeconds(double seconds);

  /// The Prometheus text exposition format of every metric.
  std::string Serialize() const;

  static const prometheus::Histogram::BucketBoundaries& StepLatencyBuckets();
  static const prometheus::Histogram::BucketBoundaries& BatchTokensBuckets();

 private:
  const std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Histogram>& step_latency_;
  prometheus::Family<prometheus::Histogram>& batch_tokens_;
  prometheus::Family<prometheus::Gauge>& kv_blocks_used_;
  prometheus::Family<prometheus::Gauge>& kv_blocks_free_;
  prometheus::Family<prometheus::Gauge>& model_weight_bytes_;
  prometheus::Family<prometheus::Gauge>& kv_cache_bytes_;
  prometheus::Family<prometheus::Counter>& all_reduce_seconds_;

  absl::Mutex mu_;
  // The current identity's metrics (owned by their families); null before the first Init.
  prometheus::Histogram* step_latency_now_ ABSL_GUARDED_BY(mu_) = nullptr;
  prometheus::Histogram* batch_tokens_now_ ABSL_GUARDED_BY(mu_) = nullptr;
  prometheus::Gauge* kv_blocks_used_now_ ABSL_GUARDED_BY(mu_) = nullptr;
  prometheus::Gauge* kv_blocks_free_now_ ABSL_GUARDED_BY(mu_) = nullptr;
  prometheus::Gauge* model_weight_bytes_now_ ABSL_GUARDED_BY(mu_) = nullptr;
  prometheus::Gauge* kv_cache_bytes_now_ ABSL_GUARDED_BY(mu_) = nullptr;
  prometheus::Counter* all_reduce_seconds_now_ ABSL_GUARDED_BY(mu_) = nullptr;
};

/// A Communicator that times its collectives on `clock` into `metrics` (both borrowed;
/// `metrics` may be null).
class TimedCommunicator final : public Communicator {
 public:
  TimedCommunicator(std::unique_ptr<Communicator> inner, WorkerMetrics* metrics,
                    const Clock* clock = Clock::Real())
      : inner_(std::move(inner)), metrics_(metrics), clock_(clock) {}

  int32_t rank() const override { return inner_->rank(); }
  int32_t size() const override { return inner_->size(); }
  std::string_view backend() const override { return inner_->backend(); }
  absl::Status AllReduceSum(float* data, int64_t count) override;
  absl::Status AllGather(const float* input, int64_t count, float* output) override;

 private:
  std::unique_ptr<Communicator> inner_;
  WorkerMetrics* const metrics_;
  const Clock* const clock_;
};

}  // namespace pagoda
