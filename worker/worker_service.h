// WorkerService: the pagoda.internal Worker gRPC service of one pagoda-worker process — one
// tensor-parallel rank of a replica. A thin adapter over the worker runtime: Init loads this
// rank's model shard, joins the replica's communicator (Gloo on the CPU) and sizes the KV cache;
// Execute decodes a StepPlan and applies it with a StepRunner, strictly in the order the router
// numbered the plans; Health reports the state the router's failure detection reads.
//
// Rank 0's service also serves the bootstrap store (StoreSet / StoreGet) that the other ranks
// meet through while they join the communicator.
//
// Generations: every Init carries a router-chosen generation; Execute calls of an older one are
// refused (FailedPrecondition), so a plan from before a re-initialization never runs on the new
// state. A step that fails for any reason but an invalid plan leaves the runtime's state unknown:
// the worker turns FAILED and refuses steps until the next Init.
//
//   WorkerService service({.comm_host = "10.0.0.7"}, [] { RequestExit(); });
//   grpc::ServerBuilder builder;
//   builder.RegisterService(&service);
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "pagoda/internal/worker.grpc.pb.h"
#include "worker/communicator.h"
#include "worker/rendezvous_store.h"
#include "worker/step_runner.h"
#include "worker/worker_metrics.h"

namespace pagoda {

struct WorkerServiceOptions {
  /// The address this rank's communicator listens on, the one its peers reach (its pod IP or
  /// DNS name on a cluster).
  std::string comm_host = "127.0.0.1";
  /// When set, replaces the model directory the router names in Init (the model's path on this
  /// host differs from the router's).
  std::string model_dir;
  /// How long an Execute waits for the plans numbered before it.
  absl::Duration order_timeout = absl::Seconds(60);
  /// Step, KV and collective metrics (borrowed; must outlive the service); null: none.
  WorkerMetrics* metrics = nullptr;
};

class WorkerService final : public internal::Worker::Service {
 public:
  /// `request_exit` is called (from an RPC thread) by Shutdown(exit_process = true); it must
  /// not block on the server (e.g. signal the thread that owns it).
  WorkerService(const WorkerServiceOptions& options, std::function<void()> request_exit);
  ~WorkerService() override;

  grpc::Status Init(grpc::ServerContext* context, const internal::InitRequest* request,
                    internal::InitResponse* response) override;
  grpc::Status Execute(grpc::ServerContext* context, const internal::ExecuteRequest* request,
                       internal::ExecuteResponse* response) override;
  grpc::Status Health(grpc::ServerContext* context, const internal::HealthRequest* request,
                      internal::HealthResponse* response) override;
  grpc::Status Shutdown(grpc::ServerContext* context, const internal::ShutdownRequest* request,
                        internal::ShutdownResponse* response) override;
  grpc::Status StoreSet(grpc::ServerContext* context, const internal::StoreSetRequest* request,
                        internal::StoreSetResponse* response) override;
  grpc::Status StoreGet(grpc::ServerContext* context, const internal::StoreGetRequest* request,
                        internal::StoreGetResponse* response) override;

 private:
  using State = internal::HealthResponse::State;

  // What Init builds; replaced as a whole.
  struct Runtime {
    std::unique_ptr<Communicator> communicator;
    std::unique_ptr<StepRunner> steps;  // its ModelRunner borrows `communicator`: destroyed first
  };

  absl::StatusOr<std::unique_ptr<Runtime>> Build(const internal::InitRequest& request,
                                                 internal::InitResponse* response);
  // Waits until no Init or Execute holds the runtime, then takes it.
  void AcquireRuntimeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const WorkerServiceOptions options_;
  const std::function<void()> request_exit_;
  InMemoryRendezvousStore store_;  // served to the other ranks when this is rank 0

  absl::Mutex mu_;
  State state_ ABSL_GUARDED_BY(mu_) = internal::HealthResponse::UNINITIALIZED;
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  int32_t tp_rank_ ABSL_GUARDED_BY(mu_) = 0;
  int32_t tp_size_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  std::string error_ ABSL_GUARDED_BY(mu_);
  // An Init or Execute is using runtime_ outside the lock.
  bool busy_ ABSL_GUARDED_BY(mu_) = false;
  std::unique_ptr<Runtime> runtime_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pagoda
