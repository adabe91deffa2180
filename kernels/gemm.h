// GEMM with weights in PyTorch's [out_features, in_features] layout, stored in any DType:
//   C[m, n] = alpha * sum_k A[m, k] * dequant(B)[n, k] + beta * C[m, n]
// Activations, output and accumulation are fp32. On the CPU, F32 weights go to OpenBLAS sgemm
// (B transposed, threaded over both cores) or, for decode batches, a kernel that streams B once;
// weights in any other DType are dequantized a few blocks at a time inside the product (never
// a whole fp32 copy of B; see kernels/cpu/internal/dequantizing_gemm.h).
//
//   kernels::GemmParams p{.a = x, .b = w_qkv, .c = qkv, .m = num_tokens, .n = 3 * d, .k = d};
//   RETURN_IF_ERROR(kernels::Gemm(p));
//   RETURN_IF_ERROR(kernels::Gemm({.a = x, .b = w_q4k, .b_dtype = DType::kQ4_K, .c = y,
//                                  .m = num_tokens, .n = n, .k = k}));
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "common/dtype.h"

namespace pagoda::kernels {

struct GemmParams {
  const float* a = nullptr;     // [m, k] row-major activations
  const void* b = nullptr;      // [n, k] row-major weights (out_features x in_features) in
                                // b_dtype: each row RowBytes(b_dtype, k) bytes, back to back
  DType b_dtype = DType::kF32;  // k must be a whole number of its blocks
  float* c = nullptr;           // [m, n] row-major output
  int64_t m = 0;
  int64_t n = 0;
  int64_t k = 0;
  float alpha = 1.0f;
  float beta = 0.0f;  // 0 overwrites C; 1 accumulates into it (residual adds)

  absl::Status Validate() const;
};

/// Runs the GEMM. Returns InvalidArgument for a bad params struct.
absl::Status Gemm(const GemmParams& params);

}  // namespace pagoda::kernels
