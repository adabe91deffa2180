// A device buffer that grows to the largest size asked of it, for the scratch of the
// kernels/cuda/ twins: per stream where a CUDA graph may capture the work (a GEMM's rounded
// activations: StreamScratch), per thread otherwise (sampling's uploads). Host-only.
//
//   thread_local internal::DeviceScratch scratch;
//   ASSIGN_OR_RETURN(void* buffer, scratch.Get(bytes));
//   ASSIGN_OR_RETURN(void* rounded, StreamScratch(ScratchSlot::kGemmActivations).Get(bytes));
#pragma once

#include <cstdint>
#include <memory>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "kernels/cuda/device_memory.h"
#include "kernels/cuda/graph.h"

namespace pagoda::kernels::cuda::internal {

class DeviceScratch {
 public:
  /// At least `bytes` of device memory, zeroed when first allocated. Growing frees the old
  /// buffer first (cudaFree waits for the work queued before, which may still use it); during a
  /// CUDA graph capture growing is FailedPrecondition and the old buffer stays.
  absl::StatusOr<void*> Get(int64_t bytes) {
    if (bytes > capacity_) {
      if (CapturingGraph()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "cuda: a scratch buffer of ", capacity_, " bytes would grow to ", bytes,
            " during a CUDA graph capture (run the same work once before capturing it)"));
      }
      buffer_.reset();
      capacity_ = 0;
      absl::StatusOr<std::shared_ptr<void>> grown = AllocateZeroed(bytes);
      if (!grown.ok()) return grown.status();
      buffer_ = *std::move(grown);
      capacity_ = bytes;
    }
    return buffer_.get();
  }

 private:
  std::shared_ptr<void> buffer_;
  int64_t capacity_ = 0;
};

/// The scratch buffers that work on a stream owns, one per use.
enum class ScratchSlot : uint8_t {
  kGemmActivations,     // a 16-bit GEMM's rounded activations (gemm.cu)
  kAttentionWorkspace,  // split-context decode's partials (paged_attention.cu)
  kCount
};

/// The scratch buffer `slot` of the work queued on the current stream: a Stream's own
/// (kernels/cuda/stream.h), which lives as long as the stream — so work captured into a CUDA
/// graph on it keeps valid addresses whichever thread replays it — or, on the legacy default
/// stream, this thread's.
DeviceScratch& StreamScratch(ScratchSlot slot);

}  // namespace pagoda::kernels::cuda::internal
