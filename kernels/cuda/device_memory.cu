#include <cuda_runtime.h>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/cuda/device_memory.h"
#include "kernels/cuda/internal/cuda_status.h"

namespace pagoda::kernels::cuda {

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
  void* p = nullptr;
  RETURN_IF_ERROR(internal::CudaStatus(cudaMalloc(&p, size),
                                       absl::StrCat("allocate ", bytes, " bytes on the device")));
  std::shared_ptr<void> owner(p, [](void* q) { cudaFree(q); });
  RETURN_IF_ERROR(
      internal::CudaStatus(cudaMemset(p, 0, size), absl::StrCat("zero ", bytes, " bytes")));
  return owner;
}

absl::Status CopyBytes(void* dst, const void* src, int64_t bytes) {
  if (bytes < 0) return absl::InvalidArgumentError(absl::StrCat("cuda: copy of ", bytes, " bytes"));
  if (bytes == 0) return absl::OkStatus();
  return internal::CudaStatus(cudaMemcpy(dst, src, static_cast<size_t>(bytes), cudaMemcpyDefault),
                              absl::StrCat("copy ", bytes, " bytes"));
}

absl::Status CopyRows(void* dst, int64_t dst_pitch, const void* src, int64_t src_pitch,
                      int64_t width, int64_t height) {
  if (width < 0 || height < 0 || dst_pitch < width || src_pitch < width) {
    return absl::InvalidArgumentError(absl::StrCat("cuda: copy of ", height, " rows of ", width,
                                                   " bytes with pitches ", dst_pitch, " and ",
                                                   src_pitch));
  }
  if (width == 0 || height == 0) return absl::OkStatus();
  return internal::CudaStatus(
      cudaMemcpy2D(dst, static_cast<size_t>(dst_pitch), src, static_cast<size_t>(src_pitch),
                   static_cast<size_t>(width), static_cast<size_t>(height), cudaMemcpyDefault),
      absl::StrCat("copy ", height, " rows of ", width, " bytes"));
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
