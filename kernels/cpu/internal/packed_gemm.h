// The weight formats with a layout packed at load for the AVX-512 GEMM of quantized_dot.h (Q8_0:
// packed_q8_0.h; Q4_0, Q4_1: packed_q4.h), as one table: each format's packed size, its packing
// and the GEMM that reads it. That GEMM does the stored-layout GEMM's operations in its order on
// vectors read as stored (no transposing loads, no gathers), so its results are the same bits and
// quantized_dot.h's batch invariance holds whichever of the two ran.
//
//   const int64_t bytes = PackedWeightBytes(DType::kQ4_1, n, k / 32);  // 0: no packed layout
//   PackWeights(w, DType::kQ4_1, n, k / 32, packed);
//   args.packed = packed;
//   PackedGemmAvx512For(DType::kQ4_1)(args, j_begin, j_end);  // j_begin a multiple of 16
#pragma once

#include <cstdint>

#include "common/dtype.h"
#include "kernels/cpu/internal/quantized_dot.h"

namespace pagoda::kernels::internal {

/// Weight rows per packed group: a packed GEMM's rows start at a multiple of it.
inline constexpr int64_t kPackedGroupRows = 16;

/// Bytes of n rows of num_blocks 32-element blocks of `dtype`, packed; 0 where `dtype` has no
/// packed layout.
int64_t PackedWeightBytes(DType dtype, int64_t n, int64_t num_blocks);

/// Packs n rows of num_blocks blocks of `dtype` (PackedWeightBytes > 0) at w into
/// PackedWeightBytes(dtype, n, num_blocks) bytes at out (64-byte aligned). Portable C++.
void PackWeights(const uint8_t* w, DType dtype, int64_t n, int64_t num_blocks, uint8_t* out);

/// The AVX-512 VNNI GEMM (the CPU must support CpuIsa::kAvx512) reading QuantizedGemmArgs::packed
/// laid out by PackWeights for `dtype`, or null where `dtype` has no packed layout. Its j_begin
/// must be a multiple of kPackedGroupRows.
QuantizedGemmFn PackedGemmAvx512For(DType dtype);

}  // namespace pagoda::kernels::internal
