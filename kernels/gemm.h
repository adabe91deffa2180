// GEMM with weights in PyTorch's [out_features, in_features] layout:
//   C[m, n] = alpha * sum_k A[m, k] * B[n, k] + beta * C[m, n]
// The CPU implementation calls OpenBLAS sgemm (B transposed), which threads over both cores.
//
//   kernels::GemmParams p{.a = x, .b = w_qkv, .c = qkv, .m = num_tokens, .n = 3 * d, .k = d};
//   RETURN_IF_ERROR(kernels::Gemm(p));
#pragma once

#include <cstdint>

#include "absl/status/status.h"

namespace pagoda::kernels {

struct GemmParams {
  const float* a = nullptr;  // [m, k] row-major activations
  const float* b = nullptr;  // [n, k] row-major weights (out_features x in_features)
  float* c = nullptr;        // [m, n] row-major output
  int64_t m = 0;
  int64_t n = 0;
  int64_t k = 0;
  float alpha = 1.0f;
  float beta = 0.0f;  // 0 overwrites C; 1 accumulates into it (residual adds)

  absl::Status Validate() const;
};

/// Runs the GEMM on the CPU. Returns InvalidArgument for a bad params struct.
absl::Status Gemm(const GemmParams& params);

}  // namespace pagoda::kernels
