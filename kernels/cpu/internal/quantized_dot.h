// Integer dot products of one quantized weight row with one activation row quantized to Q8
// blocks (q8_activations.h), as llama.cpp's ggml_vec_dot_*_q8_*: per 32-element block the
// weight's integer quants times the activation's int8 quants are summed in int32 (vpdpbusd on
// AVX-512 VNNI, vpmaddubsw + vpmaddwd on AVX2, plain C++ on the portable path), then scaled by
// the weight's float16 scale times the activation's scale, with the weight's min or offset
// applied through the activation block's sum:
//   Q8_0  dw da sum(q a)             Q4_1, Q5_1  dw da sum(q a) + m da sum(a)
//   Q4_0  dw da (sum(q a) - 8 sum(a))     Q5_0  dw da (sum(q a) - 16 sum(a))
// No fp32 weight is ever formed; the only difference from the dequantizing GEMM is the 8-bit
// rounding of the activations (at most d / 2 per element, q8_activations.h) and the summation
// order. Q4_K, Q5_K and Q6_K have their functions in kquant_dot.h, which both lookups below
// return for them; formats with none (Q2_K, Q3_K, the float types) keep the dequantizing GEMM
// (dequantizing_gemm.h).
//
// QuantizedGemmFor gives the GEMM over many weight and activation rows built on the same
// arithmetic. Its contract is batch invariance: element (i, j) is computed by the same
// operations in the same order whatever m is, whichever rows share its tile and whichever thread
// computes it, so a token's logits do not depend on the shape of the step that computed it. The
// AVX-512 version puts 16 weight rows in the lanes of a vector (quants transposed so that one
// vpdpbusd multiplies 4 quants of each row by 4 broadcast activation quants), which leaves whole
// int32 block sums in the lanes and does a block's fp32 work once per 16 rows; tiles of up to 4
// activation rows, weights unpacked as used (m <= 4) or once per tile of 32 rows (more), or for
// Q8_0, Q4_0 and Q4_1 read already transposed from a copy packed at load (packed_gemm.h: Q4_x at
// 5 to 16 rows in tiles of up to 6); the others dot row by row.
//
//   const QuantizedDotFn dot = QuantizedDotFor(DType::kQ4_1, CpuIsa::kAvx2);
//   y[j] = dot(w + j * row_bytes, x_q8, k / kQ8BlockElements);
#pragma once

#include <cstdint>

#include "common/dtype.h"
#include "kernels/cpu/internal/cpu_isa.h"
#include "kernels/cpu/internal/q8_activations.h"

namespace pagoda::kernels::internal {

/// sum over num_blocks blocks of (weight row at w) · (activation blocks at a).
using QuantizedDotFn = float (*)(const void* w, const Q8Block* a, int64_t num_blocks);

/// The function for weights in `dtype` on `isa` (which the CPU must support: CpuSupports), or
/// null where `dtype` has no integer dot product.
QuantizedDotFn QuantizedDotFor(DType dtype, CpuIsa isa);

/// Blocks an activation row of num_blocks blocks takes in QuantizedGemmArgs::a: rounded up to a
/// multiple of 2; the padding block holds zeros (d = 0, sum = 0, qs = 0).
inline int64_t Q8RowStride(int64_t num_blocks) { return (num_blocks + 1) / 2 * 2; }
/// Floats a row takes in QuantizedGemmArgs::scaled_sums: num_blocks rounded up to 16, zero padded.
inline int64_t ScaledSumsStride(int64_t num_blocks) { return (num_blocks + 15) / 16 * 16; }

struct QuantizedGemmArgs {
  const uint8_t* w;          // [n, row_bytes]: the quantized weight rows
  const uint8_t* packed;     // null, or for Q8_0, Q4_0, Q4_1 the same rows packed (packed_gemm.h),
                             // which the AVX-512 GEMM reads instead (the others ignore it)
  int64_t row_bytes;         // bytes of one weight row
  int64_t num_blocks;        // 32-element blocks per row (k / 32)
  const Q8Block* a;          // [m, Q8RowStride(num_blocks)]: the quantized activation rows
  const float* scaled_sums;  // [m, ScaledSumsStride(num_blocks)]: a[i][b].d * a[i][b].sum
  int64_t m;
  float* c;  // C[i, j] at c[i * ldc + j]
  int64_t ldc;
  float alpha;
  float beta;
};

/// Writes C[i, j] = alpha * (weight row j) . (activation row i) + beta * C[i, j] for i < m and
/// j in [j_begin, j_end). Batch-invariant (see the top of this file).
using QuantizedGemmFn = void (*)(const QuantizedGemmArgs& args, int64_t j_begin, int64_t j_end);

/// The batch-invariant GEMM for weights in `dtype` on `isa` (CpuSupports'ed), or null where
/// `dtype` has no integer dot product.
QuantizedGemmFn QuantizedGemmFor(DType dtype, CpuIsa isa);

}  // namespace pagoda::kernels::internal
