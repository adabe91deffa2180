// NcclCommunicator: the GPU backend of Communicator — NCCL collectives on device buffers between
// the ranks of one replica, one GPU per rank. NCCL is not linked: the first group loads it
// (worker/internal/nccl.h: $PAGODA_NCCL_LIBRARY, else libnccl.so.2, else libnccl.so), so a host
// without it fails here with FailedPrecondition naming the files tried, and nowhere else. Rank 0
// creates the NCCL unique id and publishes it in the RendezvousStore under `prefix`; the other
// ranks read it, then all join with ncclCommInitRankConfig. A build without CUDA answers
// FailedPrecondition (nccl_communicator_unavailable.cc).
//
// Pointers passed to AllReduceSum / AllGather are device pointers on `device`. Each call enqueues
// the collective on the communicator's own stream, after the work queued before on the default
// stream (the kernels that wrote its input), and waits for it, polling NCCL's error state, so a
// dead or silent peer gives an error after `timeout` (the communicator is then aborted and every
// later call fails) instead of a hang.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<Communicator> comm,
//                    CreateNcclCommunicator({.rank = 0, .size = 2, .device = 0,
//                                            .prefix = "r0/g3/"}, &store));
//   RETURN_IF_ERROR(comm->AllReduceSum(device_data, count));
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "worker/communicator.h"
#include "worker/rendezvous_store.h"

namespace pagoda {

struct NcclCommunicatorOptions {
  int32_t rank = 0;
  int32_t size = 1;
  int32_t device = 0;  // CUDA device ordinal of this rank
  /// Key namespace in the store (e.g. the router's Init generation).
  std::string prefix;
  /// Bounds the rendezvous, the group's initialisation, and each collective.
  absl::Duration timeout = absl::Seconds(30);
};

/// Joins the group: blocks until every rank has joined (or fails after options.timeout).
/// `store` is used only during the call.
absl::StatusOr<std::unique_ptr<Communicator>> CreateNcclCommunicator(
    const NcclCommunicatorOptions& options, RendezvousStore* store);

}  // namespace pagoda
