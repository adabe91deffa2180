// Communicator: the collectives a tensor-parallel model shard needs from its group — the
// all-reduce after row-parallel projections and the all-gather of vocab-parallel logits. One
// interface, three backends: "single" (one rank, no communication), "gloo" (CPU, TCP; see
// gloo_communicator.h) and "nccl" (GPU; nccl_communicator.h, CUDA builds only).
//
// Calls are collective: every rank of the group makes the same calls in the same order with the
// same counts, one call at a time (a communicator is not safe for concurrent use). An error
// (a peer died, a timeout) leaves the group unusable; it is reported, never thrown.
//
//   std::unique_ptr<Communicator> comm = CreateSingleCommunicator();
//   RETURN_IF_ERROR(comm->AllReduceSum(partial.data(), partial.size()));
//   RETURN_IF_ERROR(comm->AllGather(local.data(), local.size(), gathered.data()));
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace pagoda {

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int32_t rank() const = 0;
  virtual int32_t size() const = 0;
  /// "single", "gloo" or "nccl".
  virtual std::string_view backend() const = 0;

  /// In place: data <- sum over ranks of data (same count on every rank).
  virtual absl::Status AllReduceSum(float* data, int64_t count) = 0;
  /// output[r * count, (r + 1) * count) <- input of rank r. `output` holds size() * count floats
  /// and does not overlap `input`.
  virtual absl::Status AllGather(const float* input, int64_t count, float* output) = 0;
};

/// A group of one: AllReduceSum leaves data as it is, AllGather copies input to output.
std::unique_ptr<Communicator> CreateSingleCommunicator();

/// The argument checks every backend makes before a collective (InvalidArgument naming it).
absl::Status CheckAllReduceArguments(const float* data, int64_t count);
absl::Status CheckAllGatherArguments(const float* input, int64_t count, const float* output);
/// The checks every backend makes before joining a group: rank in [0, size), a rendezvous
/// store, a positive timeout. `backend` names it in the message ("gloo", "nccl").
absl::Status CheckGroupArguments(std::string_view backend, int32_t rank, int32_t size,
                                 bool has_store, absl::Duration timeout);

}  // namespace pagoda
