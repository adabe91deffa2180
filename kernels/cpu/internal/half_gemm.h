// The CPU GEMM for 16-bit float weights (F16, BF16) with fp32 activations and accumulation:
//   C[m, n] = alpha * A[m, k] · W[n, k]^T + beta * C, W converted to fp32 in registers.
// Each thread takes its own contiguous range of W's rows (multiples of 4) and streams it from
// memory once per block of activation rows (as many as fit in about 256 KiB: every decode batch
// is one block); a register tile of 4 weight rows × MR activation rows (AVX-512: MR <= 4, 16
// accumulators of 16 lanes; AVX2 + F16C: MR <= 2, 8 of 8) converts each 16-bit weight vector once
// (F16: vcvtph2ps; BF16: zero-extend and shift, exact) and multiplies it into every activation
// row of the tile. No fp32 copy of a weight ever reaches memory. The portable path dots row by
// row with the same scalar conversions as half.h.
//
// Batch invariance, as the integer GEMM's (integer_gemm.h): element (i, j) has its own
// accumulator vector, which sums the products of lane l (k positions l mod lanes, the masked or
// zero-padded tail included) with one FMA each in k order, and is then reduced by the same fixed
// tree of additions — (l, l + 8), (l, l + 4), (l, l + 2), (l, l + 1) — whatever MR, its tile
// neighbours or the thread split; the file is built without FMA contraction, so alpha and beta
// apply alike everywhere. A token's logits are therefore bit-identical however its step was
// shaped. The results differ from the dequantize-then-fp32 reference only by the summation order
// (the conversions are exact).
//
//   if (IsHalfDType(p.b_dtype)) HalfGemm(p, config->isa);
#pragma once

#include "common/dtype.h"
#include "kernels/cpu/internal/cpu_isa.h"
#include "kernels/gemm.h"

namespace pagoda::kernels::internal {

/// Whether `dtype` is F16 or BF16, the weights HalfGemm takes.
bool IsHalfDType(DType dtype);

/// Validated params with IsHalfDType(b_dtype) and m > 0; `isa` must be CpuSupports'ed.
void HalfGemm(const GemmParams& params, CpuIsa isa);

}  // namespace pagoda::kernels::internal
