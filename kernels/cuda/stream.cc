#include "kernels/cuda/stream.h"

#include <cuda_runtime.h>

#include "kernels/cuda/internal/cuda_status.h"

namespace pagoda::kernels::cuda {
namespace {

thread_local StreamHandle current_stream = nullptr;

}  // namespace

absl::StatusOr<Stream> Stream::Create() {
  cudaStream_t stream = nullptr;
  absl::Status status = internal::CudaStatus(cudaStreamCreate(&stream), "create a stream");
  if (!status.ok()) return status;
  Stream created;
  created.stream_ = std::shared_ptr<CUstream_st>(stream, [](cudaStream_t s) {
    cudaStreamDestroy(s);  // waits for nothing: work queued on it still completes
  });
  return created;
}

StreamHandle CurrentStream() { return current_stream; }

ScopedStream::ScopedStream(StreamHandle stream) : previous_(current_stream) {
  current_stream = stream;
}

ScopedStream::~ScopedStream() { current_stream = previous_; }

}  // namespace pagoda::kernels::cuda
