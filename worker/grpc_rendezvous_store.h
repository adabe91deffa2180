// GrpcRendezvousStore: the RendezvousStore a rank > 0 uses to meet the other ranks of its replica
// through rank 0's Worker service (StoreSet / StoreGet RPCs), so the communicator bootstrap
// (Gloo addresses, the NCCL unique id) needs no extra service or port. Rank 0 itself uses the
// InMemoryRendezvousStore its service serves.
//
//   GrpcRendezvousStore store("worker-0.pagoda-r0:50061", absl::Seconds(30));
//   RETURN_IF_ERROR(store.Set("g7/rank1", address));
//   ASSIGN_OR_RETURN(std::string peer, store.Get("g7/rank0", absl::Seconds(30)));
#pragma once

#include <memory>
#include <string>

#include "absl/time/time.h"
#include "common/tls_files.h"
#include "pagoda/internal/worker.grpc.pb.h"
#include "worker/rendezvous_store.h"

namespace pagoda {

class GrpcRendezvousStore final : public RendezvousStore {
 public:
  /// `rank0_address`: host:port of rank 0's Worker service, dialed over TLS when `tls` has a CA
  /// (pagoda-worker's --tls-ca, presenting its --tls-cert to rank 0's --tls-client-ca). Calls
  /// retry while rank 0 is not reachable yet (it may start after this rank), up to
  /// `connect_timeout` per call.
  GrpcRendezvousStore(const std::string& rank0_address, absl::Duration connect_timeout,
                      const TlsPem& tls = {});

  absl::Status Set(const std::string& key, const std::string& value) override;
  absl::StatusOr<std::string> Get(const std::string& key, absl::Duration timeout) override;

 private:
  std::string address_;
  absl::Duration connect_timeout_;
  std::unique_ptr<internal::Worker::Stub> stub_;
};

}  // namespace pagoda
