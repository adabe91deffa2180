// GEMM with weights in PyTorch's [out_features, in_features] layout, stored in any DType:
//   C[m, n] = alpha * sum_k A[m, k] * dequant(B)[n, k] + beta * C[m, n]
// Activations, output and accumulation are fp32. On the CPU, F32 weights go to OpenBLAS sgemm
// (B transposed, threaded over both cores) or, for decode batches, a kernel that streams B once;
// Q8_0/Q4_0/Q4_1/Q5_0/Q5_1 weights multiply the activations rounded to 8 bits: integer dot
// products at decode-sized m, dequantized panels above (kernels/cpu/internal/integer_gemm.h;
// PAGODA_CPU_INT8_DOT=0 turns the rounding off); F16 and BF16 weights are converted to fp32 in
// registers (kernels/cpu/internal/half_gemm.h); weights in any other DType are dequantized a few
// blocks at a time inside the product (never a whole fp32 copy of B; see
// kernels/cpu/internal/dequantizing_gemm.h). Q8_0, Q4_0 and Q4_1 weights packed once at load
// (PackGemmWeights, GemmParams::b_packed) skip the AVX-512 kernel's transposing loads. Returns
// FailedPrecondition / InvalidArgument when PAGODA_CPU_ISA names an instruction set this CPU lacks
// or none at all (kernels/cpu/internal/cpu_isa.h).
//
//   kernels::GemmParams p{.a = x, .b = w_qkv, .c = qkv, .m = num_tokens, .n = 3 * d, .k = d};
//   RETURN_IF_ERROR(kernels::Gemm(p));
//   RETURN_IF_ERROR(kernels::Gemm({.a = x, .b = w_q4k, .b_dtype = DType::kQ4_K, .c = y,
//                                  .m = num_tokens, .n = n, .k = k}));
//   // Columns [q_k_rows, q_k_rows + v_rows) of a [num_tokens, qkv_width] output:
//   RETURN_IF_ERROR(kernels::Gemm({.a = x, .b = w_v, .b_dtype = DType::kQ6_K,
//                                  .c = qkv + q_k_rows, .m = num_tokens, .n = v_rows,
//                                  .k = hidden, .ldc = qkv_width}));
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "common/dtype.h"
#include "kernels/device.h"

namespace pagoda::kernels {

struct GemmParams {
  const float* a = nullptr;     // [m, k] row-major activations
  const void* b = nullptr;      // [n, k] row-major weights (out_features x in_features) in
                                // b_dtype: each row RowBytes(b_dtype, k) bytes, back to back
  DType b_dtype = DType::kF32;  // k must be a whole number of its blocks
  /// Optional: the same weights as b in the layout PackGemmWeights wrote (Q8_0, Q4_0, Q4_1 on
  /// AVX-512: rows transposed into vectors), which the CPU kernel reads instead of b where it can.
  /// The result is the same bits either way; b is still required (other paths read it).
  const void* b_packed = nullptr;
  float* c = nullptr;  // [m, n] row-major output
  int64_t m = 0;
  int64_t n = 0;
  int64_t k = 0;
  float alpha = 1.0f;
  float beta = 0.0f;  // 0 overwrites C; 1 accumulates into it (residual adds)
  /// Floats between consecutive rows of C; 0 means n. A larger stride writes an n-column window
  /// of a wider matrix (one part of a fused projection whose parts have different dtypes).
  int64_t ldc = 0;
  /// Where a, b and c are. Device::kCuda: cuBLAS on float32, bfloat16 and float16 weights
  /// (kernels/cuda/gemm.h: bfloat16/float16 round the activations to the weights' type first).
  Device device = Device::kCpu;

  int64_t row_stride() const { return ldc == 0 ? n : ldc; }

  absl::Status Validate() const;
};

/// Runs the GEMM. Returns InvalidArgument for a bad params struct (or a bad PAGODA_CPU_ISA, see
/// above).
absl::Status Gemm(const GemmParams& params);

/// Several GEMMs of the same activations (the same a, m, k and device): the parts of one
/// projection whose weights are stored apart, as a GGUF's q, k and v or gate and up, each part
/// writing its own columns of C. Each part's result is exactly Gemm's; on the CPU, parts that all
/// take the integer path round A to 8 bits once and share one parallel region (one fork and join
/// instead of one per part). InvalidArgument for a bad part or parts that do not share A.
absl::Status GemmParts(absl::Span<const GemmParams> parts);
/// Bytes of the layout the CPU GEMM reads [n, k] weights in `dtype` fastest in, where that is not
/// the stored one, under this process's CPU kernel configuration (kernels/cpu/internal/cpu_isa.h):
/// Q8_0, Q4_0 and Q4_1 on AVX-512 VNNI. 0 for everything else, under PAGODA_CPU_PACK_WEIGHTS=0 or
/// PAGODA_CPU_INT8_DOT=0, for a bad configuration or shape: then pass b alone.
int64_t PackedGemmWeightBytes(DType dtype, int64_t n, int64_t k);

/// Writes that layout of b ([n, k] in dtype) to `packed` (PackedGemmWeightBytes(dtype, n, k)
/// bytes), for GemmParams::b_packed; done once, at load. FailedPrecondition where
/// PackedGemmWeightBytes is 0.
absl::Status PackGemmWeights(const void* b, DType dtype, int64_t n, int64_t k, void* packed);

}  // namespace pagoda::kernels
