// RemoteExecutor: the Executor of one replica whose ranks are pagoda-worker processes. Create()
// initializes every rank in parallel (pagoda.internal Init: model shard, communicator bootstrap,
// KV sizing) and takes the smallest KV capacity they report; Submit() encodes a StepPlan once
// and sends it to all ranks at once (gRPC callback API), numbering plans so each worker applies
// them in order even when two are in flight (the engine's asynchronous output processing keeps
// step n+1 running while it reads step n). Only rank 0 sends back the sampled tokens: every
// rank samples the same ones.
//
// Any rank's error or a step past step_timeout fails the step; the engine then treats the
// replica's state as unknown (common/executor.h) and the router re-initializes it.
//
//   ASSIGN_OR_RETURN(auto executor, RemoteExecutor::Create(options, /*generation=*/1));
//   std::future<absl::StatusOr<StepResult>> pending = executor->Submit(std::move(plan));
#pragma once

#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/step/executor.h"
#include "common/tls_files.h"
#include "grpcpp/channel.h"
#include "pagoda/internal/worker.grpc.pb.h"

namespace pagoda {

struct RemoteExecutorOptions {
  std::vector<std::string> worker_addresses;  // host:port, in rank order
  /// Model, KV sizing, block size, ...; Create() fills the generation, rank and bootstrap fields.
  internal::InitRequest init;
  /// The channels' TLS (router/router_main.cc's --worker-tls-*): plaintext without a CA.
  TlsPem tls;
  absl::Duration init_timeout = absl::Minutes(10);
  absl::Duration step_timeout = absl::Minutes(2);
};

/// A channel to a worker with Pagoda's message-size limits and keepalives, over TLS when `tls`
/// has a CA.
std::shared_ptr<grpc::Channel> CreateWorkerChannel(const std::string& address, const TlsPem& tls);

/// A failed call's message for logs and health: gRPC's, led by "TLS handshake failed" when the
/// router's TLS handshake (`tls`) refused the worker, or by "the worker closed the connection
/// during setup" and what TLS mismatch does that, so a wrong CA or a missing client certificate
/// reads as what it is rather than as a worker that is not there.
std::string WorkerCallError(const grpc::Status& status, const TlsPem& tls);

class RemoteExecutor final : public Executor {
 public:
  static absl::StatusOr<std::unique_ptr<RemoteExecutor>> Create(
      const RemoteExecutorOptions& options, uint64_t generation);

  /// Cancels the steps in flight and waits for their callbacks.
  ~RemoteExecutor() override;

  const ExecutorInfo& info() const override { return info_; }
  std::future<absl::StatusOr<StepResult>> Submit(StepPlan plan) override;

  uint64_t generation() const { return generation_; }
  /// Bytes of the last plan as sent to one rank (wire size, for benchmarks and metrics).
  int64_t last_plan_bytes() const;

 private:
  struct StepCall;

  RemoteExecutor(const RemoteExecutorOptions& options, uint64_t generation,
                 std::vector<std::unique_ptr<internal::Worker::Stub>> stubs,
                 const ExecutorInfo& info)
      : options_(options), generation_(generation), stubs_(std::move(stubs)), info_(info) {}

  void Finish(const std::shared_ptr<StepCall>& call);

  const RemoteExecutorOptions options_;
  const uint64_t generation_;
  std::vector<std::unique_ptr<internal::Worker::Stub>> stubs_;
  const ExecutorInfo info_;

  mutable absl::Mutex mu_;
  uint64_t next_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::shared_ptr<StepCall>> calls_ ABSL_GUARDED_BY(mu_);  // in flight, to cancel
  int64_t last_plan_bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace pagoda
