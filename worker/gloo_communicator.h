// GlooCommunicator: the CPU backend of Communicator — Gloo's ring all-reduce and all-gather over
// TCP between the ranks of one replica. The ranks find each other through a RendezvousStore:
// each publishes its listening address under `prefix`, then all connect in a full mesh.
//
// Gloo reports failures by throwing; this backend catches them at the Communicator boundary:
// a peer that never shows up or stops answering is DeadlineExceeded after `timeout`, a peer that
// closed its connection is Unavailable, anything else Internal. After a failed collective the
// group is unusable and every later call returns that first error.
//
//   InMemoryRendezvousStore store;  // rank 0's; the other ranks reach it over gRPC
//   ASSIGN_OR_RETURN(std::unique_ptr<Communicator> comm,
//                    CreateGlooCommunicator({.rank = 1, .size = 2, .prefix = "r0/g3/"}, &store));
//   RETURN_IF_ERROR(comm->AllReduceSum(data, count));
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "worker/communicator.h"
#include "worker/rendezvous_store.h"

namespace pagoda {

struct GlooCommunicatorOptions {
  int32_t rank = 0;
  int32_t size = 1;
  /// The address this rank listens on, the one its peers reach (multi-host: its own IP or DNS
  /// name).
  std::string hostname = "127.0.0.1";
  /// Key namespace in the store (e.g. the router's Init generation), so that a re-initialised
  /// group never reads a previous group's keys.
  std::string prefix;
  /// Bounds the rendezvous, connecting, and each collective.
  absl::Duration timeout = absl::Seconds(30);
};

/// Joins the group: blocks until every rank has joined (or fails after options.timeout).
/// `store` is used only during the call.
absl::StatusOr<std::unique_ptr<Communicator>> CreateGlooCommunicator(
    const GlooCommunicatorOptions& options, RendezvousStore* store);

}  // namespace pagoda
