#include "kernels/cuda/internal/cublas.h"

#include <dlfcn.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/base/call_once.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace pagoda::kernels::cuda::internal {
namespace {

// Resolves `name` into `fn`; false (and the reason in `error`) when the library lacks it.
template <typename Fn>
bool Resolve(void* library, const char* name, Fn& fn, std::string& error) {
  dlerror();
  void* symbol = dlsym(library, name);
  if (symbol == nullptr) {
    const char* reason = dlerror();
    error = absl::StrCat("symbol ", name, " is missing: ", reason != nullptr ? reason : "null");
    return false;
  }
  fn = reinterpret_cast<Fn>(symbol);
  return true;
}

absl::StatusOr<CublasApi> Load() {
  std::vector<std::string> names;
  if (const char* path = std::getenv("PAGODA_CUBLAS_LIBRARY"); path != nullptr && *path != 0) {
    names.push_back(path);
  } else {
    names.push_back(absl::StrCat("libcublas.so.", CUBLAS_VER_MAJOR));
    names.push_back("libcublas.so");
  }
  std::vector<std::string> failures;
  for (const std::string& name : names) {
    // Never closed: the handles and their kernels live as long as the process.
    void* library = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (library == nullptr) {
      const char* reason = dlerror();
      failures.push_back(absl::StrCat(name, " (", reason != nullptr ? reason : "not found", ")"));
      continue;
    }
    CublasApi api;
    std::string error;
    if (!Resolve(library, "cublasCreate_v2", api.create, error) ||
        !Resolve(library, "cublasSetMathMode", api.set_math_mode, error) ||
        !Resolve(library, "cublasGemmEx", api.gemm_ex, error) ||
        !Resolve(library, "cublasGetStatusString", api.status_string, error)) {
      failures.push_back(absl::StrCat(name, " (", error, ")"));
      continue;
    }
    return api;
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "cuBLAS could not be loaded for the device GEMM: tried ", absl::StrJoin(failures, ", "),
      "; put the CUDA toolkit's lib64 (or the nvidia-cublas wheel's lib) on LD_LIBRARY_PATH, or "
      "name the library in PAGODA_CUBLAS_LIBRARY"));
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
