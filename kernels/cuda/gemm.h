// The CUDA twin of kernels/gemm.h, called by its dispatch point with validated params whose
// device is Device::kCuda (a, b, c on the device). cuBLAS (loaded at run time,
// kernels/cuda/internal/cublas.h) computes C[m, n] = alpha * A[m, k] · B[n, k]^T + beta * C on the
// current stream (kernels/cuda/stream.h), with fp32 accumulation and an fp32 C:
//   - F32 weights: an fp32 product (no TF32), the path the exactness tests compare;
//   - BF16 / F16 weights: A is first rounded to the weights' 16-bit type (a small kernel into a
//     device buffer of the current stream's), then a tensor-core product of the two 16-bit
//     operands;
//   - any other DType: Unimplemented (quantized GGUF weights go to the device as BF16, converted
//     at load).
// No device: FailedPrecondition. Errors raised while the product runs surface at the next
// synchronizing call.
#pragma once

#include "absl/status/status.h"
#include "kernels/gemm.h"

namespace pagoda::kernels::cuda {

absl::Status Gemm(const GemmParams& params);

}  // namespace pagoda::kernels::cuda
