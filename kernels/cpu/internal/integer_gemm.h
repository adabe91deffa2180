// The CPU GEMM for few activation rows and weights in a format with an integer dot product
// (quantized_dot.h: Q8_0, Q4_0, Q4_1, Q5_0, Q5_1):
//   C[m, n] = alpha * A[m, k] · W[n, k]^T + beta * C, W quantized, A fp32 rounded to Q8 blocks.
// Each row of A is quantized once per call (on the calling thread, into a buffer that thread
// keeps), then each thread streams its own contiguous range of W's rows once, dotting every row
// with all m quantized activation rows while it sits in L1. Results differ from the
// dequantizing GEMM by the activations' 8-bit rounding (q8_activations.h), as llama.cpp's do.
//
//   if (m <= kIntegerGemmMaxRows && HasIntegerDot(p.b_dtype)) IntegerGemm(p, CpuIsa::kAvx2);
#pragma once

#include <cstdint>

#include "common/dtype.h"
#include "kernels/cpu/internal/cpu_isa.h"
#include "kernels/gemm.h"

namespace pagoda::kernels::internal {

/// Largest m that takes the integer path; above it the dequantized panels and sgemm
/// (dequantizing_gemm.h) are faster on this machine's measurements (docs/performance.md).
inline constexpr int64_t kIntegerGemmMaxRows = 4;

/// Whether weights in `dtype` have an integer dot product.
bool HasIntegerDot(DType dtype);

/// Validated params with HasIntegerDot(b_dtype) and m > 0; `isa` must be CpuSupports'ed.
void IntegerGemm(const GemmParams& params, CpuIsa isa);

}  // namespace pagoda::kernels::internal
