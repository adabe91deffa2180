// The CUDA stream the kernels/cuda/ twins queue their work on. Every kernel launch, copy and
// cuBLAS call of kernels/cuda/ goes to the calling thread's current stream: the one a
// ScopedStream set, else the legacy default stream (so code and tests that set none keep the
// ordering they had). A ModelRunner on CUDA owns a Stream and makes it current for each step, so
// that a step can be captured into a CUDA graph (kernels/cuda/graph.h): the legacy default
// stream cannot be captured. A Stream also owns the scratch buffers of the work queued on it
// (internal/device_scratch.h StreamScratch), so that what a graph captured on it uses lives as
// long as the stream, whichever thread captured or replays it. One thread at a time queues work
// on a Stream. Host-only (no CUDA headers); a build without CUDA has no streams (Stream::Create
// is FailedPrecondition, CurrentStream() stays null).
//
//   ASSIGN_OR_RETURN(cuda::Stream stream, cuda::Stream::Create());
//   {
//     cuda::ScopedStream current(stream);
//     RETURN_IF_ERROR(cuda::Gemm(params));  // queued on `stream`
//   }
#pragma once

#include <memory>

#include "absl/status/statusor.h"

struct CUstream_st;  // the CUDA runtime's stream: cudaStream_t is CUstream_st*

namespace pagoda::kernels::cuda {
namespace internal {
struct StreamState;  // the stream and its scratch buffers (stream.cc)
}  // namespace internal

/// cudaStream_t without the CUDA headers; nullptr is the legacy default stream.
using StreamHandle = CUstream_st*;

/// A stream of the current device, destroyed with its last copy. A blocking stream (not
/// cudaStreamNonBlocking): work on the legacy default stream (the device sampler's, a test's)
/// stays ordered with it in both directions, as it was when everything ran there.
class Stream {
 public:
  Stream() = default;  // none: the legacy default stream
  static absl::StatusOr<Stream> Create();
  StreamHandle get() const;

 private:
  friend class ScopedStream;
  std::shared_ptr<internal::StreamState> state_;
};

/// The stream this thread's kernels/cuda/ work goes to: the innermost ScopedStream's, else
/// nullptr (the legacy default stream).
StreamHandle CurrentStream();

/// Makes `stream` this thread's current stream until it goes out of scope (then the previous
/// one is current again); an empty Stream is the legacy default stream. `stream` must outlive
/// the scope.
class ScopedStream {
 public:
  explicit ScopedStream(const Stream& stream);
  ~ScopedStream();
  ScopedStream(const ScopedStream&) = delete;
  ScopedStream& operator=(const ScopedStream&) = delete;

 private:
  internal::StreamState* previous_;
};

}  // namespace pagoda::kernels::cuda
