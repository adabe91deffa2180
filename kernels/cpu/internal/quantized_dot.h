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
// order. Formats without a function here (the K-quants, the float types) keep the dequantizing
// GEMM (dequantizing_gemm.h).
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

}  // namespace pagoda::kernels::internal
