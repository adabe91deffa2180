#include "worker/nccl_communicator.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <cstring>
#include <string_view>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/cuda/stream.h"
#include "worker/internal/nccl.h"

namespace pagoda {
namespace {

absl::Status CudaError(cudaError_t error, std::string_view what) {
  return absl::InternalError(
      absl::StrCat(std::string(what), ": CUDA error: ", cudaGetErrorString(error)));
}

// Errors a peer or the network causes are Unavailable; the rest are bugs or broken setups.
absl::Status NcclError(const internal::NcclApi& nccl, ncclResult_t result, ncclComm_t comm,
                       std::string_view what) {
  std::string message =
      absl::StrCat(std::string(what), ": NCCL error: ", nccl.get_error_string(result));
  if (comm != nullptr) {
    const char* last = nccl.get_last_error(comm);
    if (last != nullptr && last[0] != '\0') absl::StrAppend(&message, " (", last, ")");
  }
  if (result == ncclRemoteError || result == ncclSystemError) {
    return absl::UnavailableError(message);
  }
  return absl::InternalError(message);
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(const internal::NcclApi& nccl, const NcclCommunicatorOptions& options,
                   ncclComm_t comm, cudaStream_t stream)
      : nccl_(nccl),
        rank_(options.rank),
        size_(options.size),
        device_(options.device),
        timeout_(options.timeout),
        comm_(comm),
        stream_(stream) {}

  ~NcclCommunicator() override {
    cudaSetDevice(device_);
    if (comm_ != nullptr) {
      if (broken_.ok()) {
        nccl_.comm_destroy(comm_);
      } else {
        nccl_.comm_abort(comm_);
      }
    }
    cudaStreamDestroy(stream_);
  }

  int32_t rank() const override { return rank_; }
  int32_t size() const override { return size_; }
  std::string_view backend() const override { return "nccl"; }

  absl::Status AllReduceSum(float* data, int64_t count) override {
    RETURN_IF_ERROR(CheckAllReduceArguments(data, count));
    if (!broken_.ok()) return broken_;
    if (count == 0) return absl::OkStatus();
    const std::string what = absl::StrCat("nccl all-reduce of ", count, " floats on rank ", rank_);
    if (cudaError_t error = cudaSetDevice(device_); error != cudaSuccess) {
      return CudaError(error, what);
    }
    const cudaStream_t stream = CollectiveStream();
    broken_ = Finish(
        nccl_.all_reduce(data, data, static_cast<size_t>(count), ncclFloat, ncclSum, comm_, stream),
        stream, what);
    return broken_;
  }

  absl::Status AllGather(const float* input, int64_t count, float* output) override {
    RETURN_IF_ERROR(CheckAllGatherArguments(input, count, output));
    if (!broken_.ok()) return broken_;
    if (count == 0) return absl::OkStatus();
    const std::string what = absl::StrCat("nccl all-gather of ", count, " floats on rank ", rank_);
    if (cudaError_t error = cudaSetDevice(device_); error != cudaSuccess) {
      return CudaError(error, what);
    }
    const cudaStream_t stream = CollectiveStream();
    broken_ = Finish(
        nccl_.all_gather(input, output, static_cast<size_t>(count), ncclFloat, comm_, stream),
        stream, what);
    return broken_;
  }

 private:
  // The caller's current stream (kernels/cuda/stream.h: a ModelRunner's own, so that the
  // collective is ordered after the kernels that wrote its input and can be captured into a CUDA
  // graph with them), else the communicator's own.
  cudaStream_t CollectiveStream() const {
    const cudaStream_t current = kernels::cuda::CurrentStream();
    return current != nullptr ? current : stream_;
  }

  // Waits until the collective just launched has run: first until NCCL has enqueued it (the
  // communicator is non-blocking), then until `stream` has drained. Past the timeout, or on an
  // asynchronous NCCL error, the communicator is aborted. While `stream` is being captured into
  // a CUDA graph nothing runs and nothing may wait: the collective is only recorded, and the
  // first call after the graph's replay (the runner's all-gather of the logits) waits for the
  // stream, the graph's collectives included, under the same timeout.
  absl::Status Finish(ncclResult_t launched, cudaStream_t stream, const std::string& what) {
    const absl::Time deadline = absl::Now() + timeout_;
    ncclResult_t state = launched;
    while (state == ncclInProgress) {
      if (absl::Now() > deadline) return Abort(what);
      std::this_thread::yield();
      nccl_.comm_get_async_error(comm_, &state);
    }
    if (state != ncclSuccess) return NcclError(nccl_, state, comm_, what);
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    if (cudaError_t error = cudaStreamIsCapturing(stream, &capture); error != cudaSuccess) {
      return CudaError(error, what);
    }
    if (capture != cudaStreamCaptureStatusNone) return absl::OkStatus();
    while (true) {
      const cudaError_t query = cudaStreamQuery(stream);
      if (query == cudaSuccess) return absl::OkStatus();
      if (query != cudaErrorNotReady) return CudaError(query, what);
      nccl_.comm_get_async_error(comm_, &state);
      if (state != ncclSuccess && state != ncclInProgress) {
        return NcclError(nccl_, state, comm_, what);
      }
      if (absl::Now() > deadline) return Abort(what);
      std::this_thread::yield();
    }
  }

  absl::Status Abort(const std::string& what) {
    nccl_.comm_abort(comm_);
    comm_ = nullptr;
    return absl::DeadlineExceededError(absl::StrCat(
        what, ": not finished after ", absl::FormatDuration(timeout_), "; communicator aborted"));
  }

  const internal::NcclApi& nccl_;
  const int32_t rank_;
  const int32_t size_;
  const int32_t device_;
  const absl::Duration timeout_;
  ncclComm_t comm_;  // nullptr once aborted
  cudaStream_t stream_;
  absl::Status broken_;  // the first failure; the group is unusable after it
};

// The unique id of the group: rank 0 makes and publishes it, the others wait for it.
absl::StatusOr<ncclUniqueId> ExchangeUniqueId(const internal::NcclApi& nccl,
                                              const NcclCommunicatorOptions& options,
                                              RendezvousStore* store) {
  const std::string key = options.prefix + "nccl/unique_id";
  ncclUniqueId id;
  if (options.rank == 0) {
    if (ncclResult_t result = nccl.get_unique_id(&id); result != ncclSuccess) {
      return NcclError(nccl, result, nullptr, "creating the NCCL unique id");
    }
    RETURN_IF_ERROR(store->Set(key, std::string(id.internal, sizeof(id.internal))));
    return id;
  }
  ASSIGN_OR_RETURN(const std::string value, store->Get(key, options.timeout));
  if (value.size() != sizeof(id.internal)) {
    return absl::InvalidArgumentError(absl::StrCat("rendezvous key '", key, "' holds ",
                                                   value.size(), " bytes, not an NCCL unique id"));
  }
  std::memcpy(id.internal, value.data(), sizeof(id.internal));
  return id;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Communicator>> CreateNcclCommunicator(
    const NcclCommunicatorOptions& options, RendezvousStore* store) {
  RETURN_IF_ERROR(
      CheckGroupArguments("nccl", options.rank, options.size, store != nullptr, options.timeout));
  const std::string what =
      absl::StrCat("rank ", options.rank, " of ", options.size, " joining the nccl group '",
                   options.prefix, "' on device ", options.device);
  // Before the rendezvous: a host without NCCL fails now, not after its peers' timeout.
  absl::StatusOr<const internal::NcclApi*> loaded = internal::LoadNccl();
  if (!loaded.ok()) {
    return absl::Status(loaded.status().code(),
                        absl::StrCat(what, ": ", loaded.status().message()));
  }
  const internal::NcclApi& nccl = **loaded;
  absl::StatusOr<ncclUniqueId> id = ExchangeUniqueId(nccl, options, store);
  if (!id.ok()) {
    return absl::Status(id.status().code(), absl::StrCat(what, ": ", id.status().message()));
  }
  if (cudaError_t error = cudaSetDevice(options.device); error != cudaSuccess) {
    return CudaError(error, what);
  }
  // For callers that set no stream of their own (kernels/cuda/stream.h): a blocking stream (not
  // cudaStreamNonBlocking), as their kernels run on the legacy default stream and a collective
  // must start only after the kernels that wrote its input have finished.
  cudaStream_t stream = nullptr;
  if (cudaError_t error = cudaStreamCreate(&stream); error != cudaSuccess) {
    return CudaError(error, what);
  }
  // Non-blocking initialisation, so that a rank that never joins is a timeout, not a hang.
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  ncclComm_t comm = nullptr;
  ncclResult_t state = nccl.comm_init_rank_config(&comm, options.size, *id, options.rank, &config);
  const absl::Time deadline = absl::Now() + options.timeout;
  while (state == ncclInProgress && absl::Now() <= deadline) {
    std::this_thread::yield();
    nccl.comm_get_async_error(comm, &state);
  }
  if (state != ncclSuccess) {
    const absl::Status status =
        state == ncclInProgress
            ? absl::DeadlineExceededError(absl::StrCat(what, ": the group did not form within ",
                                                       absl::FormatDuration(options.timeout)))
            : NcclError(nccl, state, comm, what);
    if (comm != nullptr) nccl.comm_abort(comm);
    cudaStreamDestroy(stream);
    return status;
  }
  return std::unique_ptr<Communicator>(new NcclCommunicator(nccl, options, comm, stream));
}

}  // namespace pagoda
