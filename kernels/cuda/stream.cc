#include "kernels/cuda/stream.h"

#include <cuda_runtime.h>

#include <array>

#include "kernels/cuda/internal/cuda_status.h"
#include "kernels/cuda/internal/device_scratch.h"

namespace pagoda::kernels::cuda {
namespace internal {

struct StreamState {
  ~StreamState() {
    for (DeviceScratch& s : scratch) s = DeviceScratch();  // freed while the stream exists
    cudaStreamDestroy(stream);                             // work queued on it still completes
  }
  cudaStream_t stream = nullptr;
  std::array<DeviceScratch, static_cast<size_t>(ScratchSlot::kCount)> scratch;
};

}  // namespace internal

namespace {

thread_local internal::StreamState* current_state = nullptr;

}  // namespace

absl::StatusOr<Stream> Stream::Create() {
  cudaStream_t stream = nullptr;
  absl::Status status = internal::CudaStatus(cudaStreamCreate(&stream), "create a stream");
  if (!status.ok()) return status;
  Stream created;
  created.state_ = std::make_shared<internal::StreamState>();
  created.state_->stream = stream;
  return created;
}

StreamHandle Stream::get() const { return state_ != nullptr ? state_->stream : nullptr; }

StreamHandle CurrentStream() { return current_state != nullptr ? current_state->stream : nullptr; }

ScopedStream::ScopedStream(const Stream& stream) : previous_(current_state) {
  current_state = stream.state_.get();
}

ScopedStream::~ScopedStream() { current_state = previous_; }

namespace internal {

DeviceScratch& StreamScratch(ScratchSlot slot) {
  thread_local std::array<DeviceScratch, static_cast<size_t>(ScratchSlot::kCount)> own;
  auto& buffers = current_state != nullptr ? current_state->scratch : own;
  return buffers[static_cast<size_t>(slot)];
}

}  // namespace internal
}  // namespace pagoda::kernels::cuda
