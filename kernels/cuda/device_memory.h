// Device memory for the CUDA backend, as plain bytes: allocation with an owner that frees it,
// copies in any direction, and the device count. Host-only (no CUDA headers), so the rest of the
// code calls it without nvcc; a build without CUDA links kernels/cuda/unavailable.cc instead,
// whose functions answer FailedPrecondition (and DeviceCount() 0).
//
//   ASSIGN_OR_RETURN(std::shared_ptr<void> bytes, cuda::AllocateZeroed(n));
//   RETURN_IF_ERROR(cuda::CopyBytes(bytes.get(), host.data(), n));   // host -> device
//
// Errors: an allocation the device cannot hold is ResourceExhausted naming the bytes; no device
// or no driver is FailedPrecondition; any other CUDA error is Internal with CUDA's own message.
#pragma once

#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace pagoda::kernels::cuda {

/// True when this build has the CUDA backend (PAGODA_CUDA=ON).
bool BuiltWithCuda();

/// CUDA devices this process can use: 0 without a driver, without a device, or without CUDA.
int DeviceCount();

/// `bytes` (>= 0) of zeroed device memory on the current device, freed (cudaFree) when the last
/// owner goes. A zero-byte request still returns a non-null allocation.
absl::StatusOr<std::shared_ptr<void>> AllocateZeroed(int64_t bytes);

/// Copies `bytes` from src to dst, each on the host or the device (unified addressing tells
/// which), after all work queued before on the current stream (kernels/cuda/stream.h: the
/// legacy default stream unless a ScopedStream set one); returns when the copy is done.
/// FailedPrecondition during a CUDA graph capture (kernels/cuda/graph.h), as is AllocateZeroed.
absl::Status CopyBytes(void* dst, const void* src, int64_t bytes);

/// Copies `height` rows of `width` bytes from src, whose rows start `src_pitch` bytes apart, to
/// dst, whose rows start `dst_pitch` bytes apart (cudaMemcpy2D; each side on the host or the
/// device), ordered as CopyBytes. InvalidArgument for a negative size or a pitch below `width`.
absl::Status CopyRows(void* dst, int64_t dst_pitch, const void* src, int64_t src_pitch,
                      int64_t width, int64_t height);

/// Marks its scope's work as the kind CUDA graphs capture (a ModelRunner's forward pass): the
/// buffers AllocateZeroed makes inside such a scope (on this thread) are the ones a graph may
/// hold, and only their frees count for FreedSince — not those of the sampler's, the logits' or a
/// test's buffers, which grow with the batch outside the captured work.
class ScopedCapturableWork {
 public:
  ScopedCapturableWork();
  ~ScopedCapturableWork();
  ScopedCapturableWork(const ScopedCapturableWork&) = delete;
  ScopedCapturableWork& operator=(const ScopedCapturableWork&) = delete;
};

/// A point in the life of this process's capturable buffers (allocated in a ScopedCapturableWork),
/// to ask later whether one that existed then has been freed since: a CUDA graph holds the
/// addresses of the buffers it was captured with (ModelRunner captures again when one of them
/// may be gone). Buffers allocated after the mark do not count: no graph captured before it can
/// use them.
struct AllocationMark {
  uint64_t next_id = 0;  // buffers are numbered in allocation order; those before existed
  uint64_t frees = 0;    // frees recorded before the mark
};
AllocationMark MarkAllocations();
/// True when a capturable buffer allocated before `mark` has been freed after it. When not, moves
/// the mark's frees forward (the next call looks only at later frees).
bool FreedSince(AllocationMark& mark);

/// Waits for all queued device work and reports the first error it raised.
absl::Status Synchronize();

/// The current device's memory, as the driver reports it (cudaMemGetInfo): what is free now
/// (other processes' allocations count as used) and the total.
struct DeviceMemoryInfo {
  int64_t free_bytes = 0;
  int64_t total_bytes = 0;
};
absl::StatusOr<DeviceMemoryInfo> MemoryInfo();

/// Makes device `ordinal` the calling thread's current device (cudaSetDevice): InvalidArgument
/// for an ordinal outside [0, DeviceCount()).
absl::Status SetDevice(int ordinal);

}  // namespace pagoda::kernels::cuda
