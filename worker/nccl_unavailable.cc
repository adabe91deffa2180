// CreateNcclCommunicator in a build without CUDA (PAGODA_CUDA=OFF): FailedPrecondition, so
// CPU-only builds link and say plainly what is missing.
#include "absl/status/status.h"
#include "worker/nccl_communicator.h"

namespace pagoda {

absl::StatusOr<std::unique_ptr<Communicator>> CreateNcclCommunicator(const NcclCommunicatorOptions&,
                                                                     RendezvousStore*) {
  return absl::FailedPreconditionError(
      "communicator 'nccl': this build has no CUDA backend (built with PAGODA_CUDA=OFF)");
}

}  // namespace pagoda
