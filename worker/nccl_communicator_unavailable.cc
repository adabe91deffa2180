// CreateNcclCommunicator in a build without CUDA (PAGODA_CUDA=OFF, no nccl.h): a clear error. The
// worker reaches it only when asked for NCCL explicitly; SelectDevice refuses CUDA first.
#include "absl/status/status.h"
#include "worker/nccl_communicator.h"

namespace pagoda {

absl::StatusOr<std::unique_ptr<Communicator>> CreateNcclCommunicator(
    const NcclCommunicatorOptions& options, RendezvousStore* store) {
  if (absl::Status status = CheckGroupArguments("nccl", options.rank, options.size,
                                                store != nullptr, options.timeout);
      !status.ok()) {
    return status;
  }
  return absl::FailedPreconditionError(
      "the nccl communicator needs a build with CUDA; this one has none (PAGODA_CUDA=OFF)");
}

}  // namespace pagoda
