// The device GEMM: cuBLAS's GemmEx on the row-major operands, seen as column-major transposes.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/cuda/device_memory.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/internal/cublas.h"
#include "kernels/cuda/internal/cuda_status.h"
#include "kernels/cuda/internal/device_scratch.h"
#include "kernels/cuda/stream.h"

namespace pagoda::kernels::cuda {
namespace {

constexpr int kThreads = 256;
constexpr unsigned int kMaxBlocks = 65535;

__device__ __forceinline__ void Round(float x, __nv_bfloat16* out) {
  *out = __float2bfloat16_rn(x);
}
__device__ __forceinline__ void Round(float x, __half* out) { *out = __float2half_rn(x); }

// out[i] = in[i] rounded to nearest even, for i in [0, n): a grid-stride loop.
template <typename Half>
__global__ void RoundKernel(const float* __restrict__ in, Half* __restrict__ out, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    Round(in[i], &out[i]);
  }
}

// A rounded to Half in the current stream's scratch buffer.
template <typename Half>
absl::StatusOr<const void*> RoundActivations(const float* a, int64_t count) {
  internal::DeviceScratch& rounded =
      internal::StreamScratch(internal::ScratchSlot::kGemmActivations);
  ASSIGN_OR_RETURN(void* scratch, rounded.Get(count * static_cast<int64_t>(sizeof(Half))));
  const unsigned int blocks = static_cast<unsigned int>(
      std::min<int64_t>(internal::BlocksFor(count, kThreads), kMaxBlocks));
  RoundKernel<Half>
      <<<blocks, kThreads, 0, CurrentStream()>>>(a, static_cast<Half*>(scratch), count);
  RETURN_IF_ERROR(internal::LaunchStatus("gemm: round the activations"));
  return static_cast<const void*>(scratch);
}

}  // namespace

absl::Status Gemm(const GemmParams& p) {
  if (DeviceCount() == 0) {
    return absl::FailedPreconditionError("gemm: no CUDA device (or driver) is available");
  }
  constexpr int64_t kIntMax = std::numeric_limits<int>::max();
  if (p.m > kIntMax || p.n > kIntMax || p.k > kIntMax || p.row_stride() > kIntMax) {
    return absl::InvalidArgumentError(absl::StrCat("gemm on cuda: m=", p.m, " n=", p.n, " k=", p.k,
                                                   " exceed cuBLAS's 32-bit dimensions"));
  }
  cudaDataType_t type = CUDA_R_32F;
  const void* a = p.a;
  switch (p.b_dtype) {
    case DType::kF32:
      break;
    case DType::kBF16: {
      type = CUDA_R_16BF;
      ASSIGN_OR_RETURN(a, RoundActivations<__nv_bfloat16>(p.a, p.m * p.k));
      break;
    }
    case DType::kF16: {
      type = CUDA_R_16F;
      ASSIGN_OR_RETURN(a, RoundActivations<__half>(p.a, p.m * p.k));
      break;
    }
    default:
      return absl::UnimplementedError(
          absl::StrCat("gemm on cuda: weights in ", std::string(Traits(p.b_dtype).name),
                       " (the device takes float32, bfloat16 and float16 weights; convert "
                       "quantized weights at load)"));
  }
  ASSIGN_OR_RETURN(const internal::CublasApi* api, internal::LoadCublas());
  ASSIGN_OR_RETURN(cublasHandle_t handle, internal::ThreadCublasHandle(*api));
  // This call's stream: the handle is the thread's, the current stream may differ per call.
  RETURN_IF_ERROR(
      internal::CublasStatus(*api, api->set_stream(handle, CurrentStream()), "set the stream"));
  // Row-major C[m, n] (row stride ldc) is column-major C^T[n, m] = B[n, k] · A^T[k, m]: B is
  // stored as column-major [k, n] (so op T), A as column-major [k, m] (op N).
  const int m = static_cast<int>(p.m), n = static_cast<int>(p.n), k = static_cast<int>(p.k);
  const int ldc = static_cast<int>(p.row_stride());
  return internal::CublasStatus(
      *api,
      api->gemm_ex(handle, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &p.alpha, p.b, type, k, a, type, k,
                   &p.beta, p.c, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
      absl::StrCat("gemm m=", p.m, " n=", p.n, " k=", p.k, " ",
                   std::string(Traits(p.b_dtype).name)));
}

}  // namespace pagoda::kernels::cuda
