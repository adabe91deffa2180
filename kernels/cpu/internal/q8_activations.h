// Activation rows quantized to 8-bit blocks for the integer dot products (quantized_dot.h), as
// llama.cpp's block_q8_1 but with fp32 fields: each 32 consecutive floats become
// qs[l] = round(x[l] / d) with d = max|x| / 127 (|qs| <= 127), and sum = sum_l qs[l], which the
// weight formats with a min or an offset (Q4_0/Q4_1/Q5_0/Q5_1) multiply by it. The rounding
// error of an element is at most d / 2 (plus a few ulps of d from the fp32 divide).
//
//   std::vector<Q8Block> q(k / kQ8BlockElements);
//   QuantizeRowQ8(x, q.data(), k / kQ8BlockElements);
#pragma once

#include <cstdint>

#include "kernels/cpu/internal/cpu_isa.h"

namespace pagoda::kernels::internal {

inline constexpr int kQ8BlockElements = 32;

struct Q8Block {
  float d;      // the scale: element l is d * qs[l]; NaN where the 32 inputs are not all finite
  int32_t sum;  // sum of qs
  int8_t qs[kQ8BlockElements];
};
static_assert(sizeof(Q8Block) == 40);

/// num_blocks * 32 floats at x -> num_blocks blocks at out, and each block's d * sum at
/// scaled_sums[b] (quantized_dot.h's QuantizedGemmArgs::scaled_sums) where not null. `isa`
/// kAvx512 takes intrinsics, the others the portable loops (compiler-vectorized): every field
/// is bit for bit the same whichever runs.
void QuantizeRowQ8(const float* x, Q8Block* out, int64_t num_blocks, float* scaled_sums = nullptr,
                   CpuIsa isa = CpuIsa::kScalar);

}  // namespace pagoda::kernels::internal
