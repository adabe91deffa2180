// The CPU GEMM for weights in a format with an integer dot product (quantized_dot.h: Q8_0, Q4_0,
// Q4_1, Q5_0, Q5_1; kquant_dot.h: Q4_K, Q5_K, Q6_K), with the activations rounded to 8 bits:
//   C[m, n] = alpha * round8(A)[m, k] · W[n, k]^T + beta * C, W quantized, A fp32.
// Each row of A is quantized once per call to Q8 blocks, into buffers the calling thread keeps,
// by all the threads of the call's parallel region (each its share of the blocks); after a
// barrier each thread takes its own contiguous range of W's rows and runs the batch-invariant
// kernel of quantized_dot.h over it (AVX-512: 16 weight rows per vector, each block's int32 sums
// and fp32 scaling done once per 16 rows, a few activation rows per tile). The same code
// computes every m — decode at batch 1, batched decode, prefill chunks of any length — and an
// element's arithmetic never depends on m, its tile neighbours or the thread split, so a
// token's logits are bit-identical however its step was shaped (prefix-cache hits, chunked prefill,
// batch sizes). They differ from the exact dequantizing GEMM by the 8-bit rounding
// (q8_activations.h), as llama.cpp's do.
//
//   if (HasIntegerDot(p.b_dtype)) IntegerGemm(p, CpuIsa::kAvx2);
#pragma once

#include "absl/types/span.h"
#include "common/dtype.h"
#include "kernels/cpu/internal/cpu_isa.h"
#include "kernels/gemm.h"

namespace pagoda::kernels::internal {

/// Whether weights in `dtype` have an integer dot product.
bool HasIntegerDot(DType dtype);

/// Validated params with HasIntegerDot(b_dtype) and m > 0; `isa` must be CpuSupports'ed.
void IntegerGemm(const GemmParams& params, CpuIsa isa);

/// IntegerGemm of each part (all sharing a, m and k, each HasIntegerDot), with A rounded once and
/// one parallel region over the parts' rows taken back to back: each element exactly as
/// IntegerGemm computes it.
void IntegerGemmParts(absl::Span<const GemmParams> parts, CpuIsa isa);

}  // namespace pagoda::kernels::internal
