// The CPU GEMM for weights in a format with an integer dot product (quantized_dot.h: Q8_0, Q4_0,
// Q4_1, Q5_0, Q5_1), with the activations rounded to 8 bits at every m:
//   C[m, n] = alpha * round8(A)[m, k] · W[n, k]^T + beta * C, W quantized, A fp32.
// Up to kIntegerGemmMaxRows rows (decode): each row of A is quantized once per call to Q8 blocks
// (on the calling thread, into a buffer that thread keeps), then each thread streams its own
// contiguous range of W's rows once, dotting every row with all m quantized activation rows in
// integer arithmetic while it sits in L1. More rows (prefill, large decode batches): A is rounded
// to the same 8-bit values (still fp32) and multiplied by the dequantizing GEMM's panels and
// sgemm, which is faster there. Both give the same products up to fp32 summation order, so a
// token's logits do not depend on how many rows its step had (prefix-cache hits, batch sizes);
// they differ from the exact dequantizing GEMM by the 8-bit rounding (q8_activations.h), as
// llama.cpp's do.
//
//   if (HasIntegerDot(p.b_dtype)) IntegerGemm(p, CpuIsa::kAvx2);
#pragma once

#include <cstdint>

#include "common/dtype.h"
#include "kernels/cpu/internal/cpu_isa.h"
#include "kernels/gemm.h"

namespace pagoda::kernels::internal {

/// Largest m that takes the integer dot products; above it the dequantized panels and sgemm
/// (dequantizing_gemm.h) are faster on this machine's measurements (docs/performance.md).
inline constexpr int64_t kIntegerGemmMaxRows = 4;

/// Whether weights in `dtype` have an integer dot product.
bool HasIntegerDot(DType dtype);

/// Validated params with HasIntegerDot(b_dtype) and m > 0; `isa` must be CpuSupports'ed (it
/// matters only up to kIntegerGemmMaxRows).
void IntegerGemm(const GemmParams& params, CpuIsa isa);

}  // namespace pagoda::kernels::internal
