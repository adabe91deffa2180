#include <cuda_runtime.h>

#include <atomic>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/cuda/device_memory.h"
#include "kernels/cuda/graph.h"
#include "kernels/cuda/internal/cuda_status.h"
#include "kernels/cuda/stream.h"

namespace pagoda::kernels::cuda {
namespace {

// Every allocation's number, and the numbers of the freed capturable ones in the order they were
// freed (such a buffer is freed when it grows or its owner goes, rarely: the list stays short).
std::atomic<uint64_t> next_allocation_id{0};
thread_local int capturable_depth = 0;  // ScopedCapturableWork scopes open on this thread
std::mutex freed_mutex;
std::vector<uint64_t>& FreedIds() {                // with freed_mutex held
  static auto* ids = new std::vector<uint64_t>();  // never destroyed: frees run until exit
  return *ids;
}

absl::Status NotWhileCapturing(std::string_view what) {
  if (!CapturingGraph()) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat("cuda: ", std::string(what),
                   " during a CUDA graph capture (a buffer the captured work uses was not "
                   "allocated beforehand: run the same work once before capturing it)"));
}

// Queued on the current stream, then waited for: the copy has happened when this returns.
absl::Status Wait(cudaError_t queued, const std::string& what) {
  RETURN_IF_ERROR(internal::CudaStatus(queued, what));
  return internal::CudaStatus(cudaStreamSynchronize(CurrentStream()), what);
}

}  // namespace

bool BuiltWithCuda() { return true; }

int DeviceCount() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error so later calls start clean
    return 0;
  }
  return count;
}

absl::StatusOr<std::shared_ptr<void>> AllocateZeroed(int64_t bytes) {
  if (bytes < 0) {
    return absl::InvalidArgumentError(absl::StrCat("cuda: cannot allocate ", bytes, " bytes"));
  }
  // At least one byte, so that an empty tensor still has storage (as on the host).
  const size_t size = bytes == 0 ? 1 : static_cast<size_t>(bytes);
  RETURN_IF_ERROR(NotWhileCapturing(absl::StrCat("allocate ", bytes, " bytes")));
  void* p = nullptr;
  RETURN_IF_ERROR(internal::CudaStatus(cudaMalloc(&p, size),
                                       absl::StrCat("allocate ", bytes, " bytes on the device")));
  const uint64_t id = next_allocation_id.fetch_add(1);
  const bool capturable = capturable_depth > 0;
  std::shared_ptr<void> owner(p, [id, capturable](void* q) {
    cudaFree(q);
    if (!capturable) return;
    const std::lock_guard<std::mutex> lock(freed_mutex);
    FreedIds().push_back(id);
  });
  RETURN_IF_ERROR(
      internal::CudaStatus(cudaMemset(p, 0, size), absl::StrCat("zero ", bytes, " bytes")));
  return owner;
}

absl::Status CopyBytes(void* dst, const void* src, int64_t bytes) {
  if (bytes < 0) return absl::InvalidArgumentError(absl::StrCat("cuda: copy of ", bytes, " bytes"));
  if (bytes == 0) return absl::OkStatus();
  const std::string what = absl::StrCat("copy ", bytes, " bytes");
  RETURN_IF_ERROR(NotWhileCapturing(what));
  return Wait(
      cudaMemcpyAsync(dst, src, static_cast<size_t>(bytes), cudaMemcpyDefault, CurrentStream()),
      what);
}

absl::Status CopyRows(void* dst, int64_t dst_pitch, const void* src, int64_t src_pitch,
                      int64_t width, int64_t height) {
  if (width < 0 || height < 0 || dst_pitch < width || src_pitch < width) {
    return absl::InvalidArgumentError(absl::StrCat("cuda: copy of ", height, " rows of ", width,
                                                   " bytes with pitches ", dst_pitch, " and ",
                                                   src_pitch));
  }
  if (width == 0 || height == 0) return absl::OkStatus();
  const std::string what = absl::StrCat("copy ", height, " rows of ", width, " bytes");
  RETURN_IF_ERROR(NotWhileCapturing(what));
  return Wait(cudaMemcpy2DAsync(dst, static_cast<size_t>(dst_pitch), src,
                                static_cast<size_t>(src_pitch), static_cast<size_t>(width),
                                static_cast<size_t>(height), cudaMemcpyDefault, CurrentStream()),
              what);
}

ScopedCapturableWork::ScopedCapturableWork() { ++capturable_depth; }
ScopedCapturableWork::~ScopedCapturableWork() { --capturable_depth; }

AllocationMark MarkAllocations() {
  const std::lock_guard<std::mutex> lock(freed_mutex);
  return {.next_id = next_allocation_id.load(), .frees = FreedIds().size()};
}

bool FreedSince(AllocationMark& mark) {
  const std::lock_guard<std::mutex> lock(freed_mutex);
  const std::vector<uint64_t>& ids = FreedIds();
  for (size_t i = mark.frees; i < ids.size(); ++i) {
    if (ids[i] < mark.next_id) return true;
  }
  mark.frees = ids.size();
  return false;
}

absl::Status Synchronize() { return internal::CudaStatus(cudaDeviceSynchronize(), "synchronize"); }

absl::StatusOr<DeviceMemoryInfo> MemoryInfo() {
  size_t free_bytes = 0;
  size_t total_bytes = 0;
  RETURN_IF_ERROR(internal::CudaStatus(cudaMemGetInfo(&free_bytes, &total_bytes), "memory info"));
  return DeviceMemoryInfo{.free_bytes = static_cast<int64_t>(free_bytes),
                          .total_bytes = static_cast<int64_t>(total_bytes)};
}

absl::Status SetDevice(int ordinal) {
  const int count = DeviceCount();
  if (ordinal < 0 || ordinal >= count) {
    return absl::InvalidArgumentError(
        absl::StrCat("CUDA device ", ordinal, " does not exist (", count, " visible)"));
  }
  return internal::CudaStatus(cudaSetDevice(ordinal), "set device");
}

}  // namespace pagoda::kernels::cuda
