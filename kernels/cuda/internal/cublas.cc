#include "kernels/cuda/internal/cublas.h"

#include <string>

#include "absl/base/call_once.h"
#include "absl/strings/str_cat.h"
#include "common/shared_library.h"

namespace pagoda::kernels::cuda::internal {
namespace {

absl::StatusOr<CublasApi> Load() {
  return LoadFirstLibrary<CublasApi>(
      LibraryNames("PAGODA_CUBLAS_LIBRARY",
                   {absl::StrCat("libcublas.so.", CUBLAS_VER_MAJOR), "libcublas.so"}),
      [](void* library, CublasApi& api, std::string& error) {
        return ResolveSymbol(library, "cublasCreate_v2", api.create, error) &&
               ResolveSymbol(library, "cublasSetMathMode", api.set_math_mode, error) &&
               ResolveSymbol(library, "cublasSetStream_v2", api.set_stream, error) &&
               ResolveSymbol(library, "cublasGemmEx", api.gemm_ex, error) &&
               ResolveSymbol(library, "cublasGetStatusString", api.status_string, error);
      },
      "cuBLAS could not be loaded for the device GEMM",
      "put the CUDA toolkit's lib64 (or the nvidia-cublas wheel's lib) on LD_LIBRARY_PATH, or "
      "name the library in PAGODA_CUBLAS_LIBRARY");
}

}  // namespace

absl::StatusOr<const CublasApi*> LoadCublas() {
  static absl::once_flag once;
  static absl::StatusOr<CublasApi>* loaded = nullptr;  // never freed: used until exit
  absl::call_once(once, [] { loaded = new absl::StatusOr<CublasApi>(Load()); });
  if (!loaded->ok()) return loaded->status();
  return &**loaded;
}

absl::StatusOr<cublasHandle_t> ThreadCublasHandle(const CublasApi& api) {
  thread_local cublasHandle_t handle = nullptr;
  if (handle != nullptr) return handle;
  cublasHandle_t created = nullptr;
  absl::Status status = CublasStatus(api, api.create(&created), "create a handle");
  if (!status.ok()) return status;
  status = CublasStatus(api, api.set_math_mode(created, CUBLAS_DEFAULT_MATH), "set the math mode");
  if (!status.ok()) return status;
  handle = created;
  return handle;
}

absl::Status CublasStatus(const CublasApi& api, cublasStatus_t status, std::string_view what) {
  if (status == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
  const std::string message =
      absl::StrCat("cublas: ", std::string(what), ": ", api.status_string(status));
  switch (status) {
    case CUBLAS_STATUS_ALLOC_FAILED:
      return absl::ResourceExhaustedError(message);
    case CUBLAS_STATUS_NOT_INITIALIZED:
    case CUBLAS_STATUS_ARCH_MISMATCH:
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return absl::FailedPreconditionError(message);
    default:
      return absl::InternalError(message);
  }
}

}  // namespace pagoda::kernels::cuda::internal
