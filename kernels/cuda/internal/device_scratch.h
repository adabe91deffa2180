// A device buffer that grows to the largest size asked of it, for the per-thread scratch of the
// kernels/cuda/ twins (a GEMM's rounded activations, sampling's uploads). Host-only.
//
//   thread_local internal::DeviceScratch scratch;
//   ASSIGN_OR_RETURN(void* buffer, scratch.Get(bytes));
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

}  // namespace pagoda::kernels::cuda::internal
