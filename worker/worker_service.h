// WorkerService: the pagoda.internal Worker gRPC service of one pagoda-worker process — a thin
// adapter that converts the protos and calls its WorkerRuntime (worker/worker_runtime.h: Init,
// Execute in the router's order, Health, generations and failure states). Rank 0's service also
// serves the runtime's bootstrap store (StoreSet / StoreGet) that the other ranks meet through
// while they join the communicator.
//
//   WorkerRuntime runtime({.comm_host = "10.0.0.7", .connect_store =
//   GrpcRendezvousConnector(tls)}); WorkerService service(&runtime, [] { RequestTermination(); });
//   grpc::ServerBuilder builder;
//   builder.RegisterService(&service);
#pragma once

#include <functional>

#include "common/tls_files.h"
#include "pagoda/internal/worker.grpc.pb.h"
#include "worker/worker_runtime.h"

namespace pagoda {

class WorkerService final : public internal::Worker::Service {
 public:
  /// `runtime` is borrowed and must outlive the service. `request_exit` is called (from an RPC
  /// thread) by Shutdown(exit_process = true); it must not block on the server (e.g. signal the
  /// thread that owns it).
  WorkerService(WorkerRuntime* runtime, std::function<void()> request_exit);

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
  WorkerRuntime* const runtime_;
  const std::function<void()> request_exit_;
};

/// The WorkerRuntime's ConnectRendezvousStore over gRPC: a GrpcRendezvousStore to rank 0's
/// Worker service, over TLS when `tls` has a CA.
ConnectRendezvousStore GrpcRendezvousConnector(const TlsPem& tls);

}  // namespace pagoda
