// The CPU GEMM for weights stored in any DType but F32 (F16, BF16, the GGUF block formats):
//   C[m, n] = alpha * A[m, k] · dequant(B)[n, k]^T + beta * C, fp32 activations and accumulation.
// B is never converted whole; its format's to_float (block_formats.h) runs inside the product:
//  - few activation rows (decode, m <= kDequantizingGemmSkinnyMaxRows): each thread streams its
//    own contiguous range of B's rows once; 4 rows at a time are dequantized 256 elements (whole
//    blocks of every format) into an L1 buffer and dotted against every row of A, so the cost
//    is one pass over the quantized bytes plus m dot products per element;
//  - more rows (prefill): each thread dequantizes panels of its rows (at most 256 KiB of fp32,
//    which stays in L2) and multiplies each with OpenBLAS sgemm, which runs single-threaded
//    inside the parallel region.
// The dequantized values equal Dequantize()'s bit for bit; only the summation order differs
// from a plain fp32 GEMM.
//
//   internal::DequantizingGemm({.a = x, .b = w, .b_dtype = DType::kQ6_K, .c = y,
//                               .m = 1, .n = 1536, .k = 576});
#pragma once

#include <cstdint>

#include "kernels/gemm.h"

namespace pagoda::kernels::internal {

/// Largest m that takes the streaming path instead of dequantized panels and sgemm.
inline constexpr int64_t kDequantizingGemmSkinnyMaxRows = 8;

/// Validated params with b_dtype != F32 and m > 0.
void DequantizingGemm(const GemmParams& params);

}  // namespace pagoda::kernels::internal
