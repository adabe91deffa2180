// Integer dot products of K-quant weight rows (Q4_K, Q5_K, Q6_K: 256-element super-blocks) with
// activation rows quantized to 32-element Q8 blocks (q8_activations.h), the K-quant rows of
// quantized_dot.h's table. Each 32-element sub-block of a super-block lines up with one Q8
// block, so per sub-block the weight's integer quants times the activation's int8 quants are
// summed in int32, multiplied by the sub-block's integer scale (still exact in int32), and then
// scaled in float by the super-block's float16 scale times the activation block's scale:
//   Q4_K, Q5_K  sum_j (d da_j) (sc_j sum(q a)) - (dmin da_j) (m_j sum_j(a))
//               (6-bit sc_j, m_j per 32 elements; q: 4 or 5 unsigned bits)
//   Q6_K        sum_j (d da_j) (sc_2j sum_lo((q - 32) a) + sc_2j+1 sum_hi((q - 32) a))
//               (int8 sc per 16 elements, q: 6 unsigned bits)
// The mins term needs the Q8 block's sum of quants, which q8_activations already keeps. No fp32
// weight is formed; the only difference from the dequantizing GEMM is the 8-bit rounding of the
// activations and the summation order, as for the legacy formats. AVX-512 VNNI (vpdpbusd, two
// sub-blocks per instruction, on activation rows packed once per call), AVX2 (vpmaddubsw +
// vpmaddwd with the sub-block scale as the multiplier) and a portable scalar path. The GEMM
// decodes each weight row once (quants unpacked, scales converted; into an L1 buffer from m = 4)
// and dots it with 4 activation rows at a time, each output with its own accumulator and the
// same operations whatever m is: batch-invariant (quantized_dot.h).
//
//   const QuantizedDotFn dot = KQuantDotFor(DType::kQ4_K, CpuIsa::kAvx2);
//   y[j] = dot(w + j * row_bytes, x_q8, k / kQ8BlockElements);   // k % 256 == 0
#pragma once

#include "common/dtype.h"
#include "kernels/cpu/internal/cpu_isa.h"
#include "kernels/cpu/internal/quantized_dot.h"

namespace pagoda::kernels::internal {

/// The dot product for K-quant weights in `dtype` on `isa` (CpuSupports'ed), or null where
/// `dtype` is not Q4_K, Q5_K or Q6_K. num_blocks (32-element blocks) is a multiple of 8.
QuantizedDotFn KQuantDotFor(DType dtype, CpuIsa isa);

/// The batch-invariant GEMM for K-quant weights in `dtype` on `isa`, or null as KQuantDotFor.
QuantizedGemmFn KQuantGemmFor(DType dtype, CpuIsa isa);

}  // namespace pagoda::kernels::internal
