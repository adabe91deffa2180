// cuBLAS for the device GEMM (kernels/cuda/gemm.cu), loaded with dlopen the first time a device
// GEMM runs instead of linked: the binaries keep running on hosts without the CUDA toolkit (the
// CPU images, CI), and the GPU bundle (scripts/gpu-check.sh) stays small — cuBLAS's static
// archives are hundreds of MB. It loads $PAGODA_CUBLAS_LIBRARY if set, else libcublas.so.<major
// of the headers it was built with>, else libcublas.so, through the loader's path
// (LD_LIBRARY_PATH; on the device machine, the nvidia-cublas wheel that PyTorch ships).
//
//   ASSIGN_OR_RETURN(const internal::CublasApi* api, internal::LoadCublas());
//   ASSIGN_OR_RETURN(cublasHandle_t handle, internal::ThreadCublasHandle(*api));
//   RETURN_IF_ERROR(internal::CublasStatus(*api, api->gemm_ex(handle, ...), "gemm 4x8x16"));
#pragma once

#include <cublas_v2.h>

#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace pagoda::kernels::cuda::internal {

/// cublasGemmEx's C entry point (C++ sees an overload set; the check below picks this one).
using CublasGemmExFn = cublasStatus_t (*)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int,
                                          int, int, const void*, const void*, cudaDataType, int,
                                          const void*, cudaDataType, int, const void*, void*,
                                          cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t);
// Fails to compile if cublas_api.h declares no such overload (unevaluated: nothing is linked).
static_assert(sizeof(static_cast<CublasGemmExFn>(&cublasGemmEx)) > 0);

/// The entry points the backend uses, with the types of cublas_v2.h.
struct CublasApi {
  decltype(&cublasCreate_v2) create = nullptr;
  decltype(&cublasSetMathMode) set_math_mode = nullptr;
  decltype(&cublasSetStream_v2) set_stream = nullptr;
  CublasGemmExFn gemm_ex = nullptr;
  decltype(&cublasGetStatusString) status_string = nullptr;
};

/// Loads the library once per process (later calls return the first outcome). FailedPrecondition
/// naming every file tried and dlerror's reason when none loads or a symbol is missing.
absl::StatusOr<const CublasApi*> LoadCublas();

/// This thread's handle on the current device, created at its first use with the default math
/// mode (fp32 products stay fp32: no TF32). Never destroyed: a handle destroyed after the CUDA
/// runtime has shut down (thread-local destructors at exit) can crash, and a process has few
/// threads that run device GEMMs.
absl::StatusOr<cublasHandle_t> ThreadCublasHandle(const CublasApi& api);

/// OK for CUBLAS_STATUS_SUCCESS; ResourceExhausted for ALLOC_FAILED; FailedPrecondition for
/// NOT_INITIALIZED, ARCH_MISMATCH and NOT_SUPPORTED; Internal otherwise. `what` names the call.
absl::Status CublasStatus(const CublasApi& api, cublasStatus_t status, std::string_view what);

}  // namespace pagoda::kernels::cuda::internal
