// The CPU GEMM for weights stored in any DType but F32 (F16, BF16, the GGUF block formats), which
// kernels::Gemm uses for Q2_K and Q3_K, and for every block format under PAGODA_CPU_INT8_DOT=0
// (F16 and BF16 have their own kernel, half_gemm.h; gemm_dtypes_benchmark compares the two):
//   C[m, n] = alpha * A[m, k] · dequant(B)[n, k]^T + beta * C, fp32 activations and accumulation.
// B is never converted whole: its format's to_float (block_formats.h) runs inside the product,
// and each thread streams its own contiguous range of B's rows exactly once.
//  - one activation row (decode at batch 1): 4 rows of B at a time are dequantized 256 elements
//    (whole blocks of every format) into an L1 buffer and dotted with the activation row;
//  - more rows: each thread dequantizes panels of its rows (at most 256 KiB of fp32, which stay
//    in L2) and multiplies each with OpenBLAS sgemm, single-threaded inside the parallel region.
//    Its register-blocked kernel beats dotting the buffer row by row from m = 2 on (measured
//    with benchmarks/gemm_dtypes_benchmark at m = 2..16), at no extra traffic from memory.
// The dequantized values equal Dequantize()'s bit for bit; only the summation order differs
// from a plain fp32 GEMM.
//
//   internal::DequantizingGemm({.a = x, .b = w, .b_dtype = DType::kQ6_K, .c = y,
//                               .m = 1, .n = 576, .k = 1536});
#pragma once

#include <cstdint>

#include "kernels/gemm.h"

namespace pagoda::kernels::internal {

/// Largest m that takes the streaming path instead of dequantized panels and sgemm.
inline constexpr int64_t kDequantizingGemmSkinnyMaxRows = 1;

/// Validated params with b_dtype != F32 and m > 0.
void DequantizingGemm(const GemmParams& params);

}  // namespace pagoda::kernels::internal
