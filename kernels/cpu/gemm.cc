#include "kernels/cpu/gemm.h"

#include <cblas.h>

#include "common/status_macros.h"
#include "kernels/cpu/internal/cpu_isa.h"
#include "kernels/cpu/internal/dequantizing_gemm.h"
#include "kernels/cpu/internal/half_gemm.h"
#include "kernels/cpu/internal/integer_gemm.h"
#include "kernels/cpu/internal/packed_gemm.h"
#include "kernels/cpu/internal/q8_activations.h"
#include "kernels/cpu/internal/skinny_gemm.h"

namespace pagoda::kernels::cpu {

absl::Status Gemm(const GemmParams& p) {
  // A PAGODA_CPU_ISA this CPU cannot run (or a misspelt one) fails every GEMM alike.
  const absl::StatusOr<internal::CpuKernelConfig>& config = internal::ActiveCpuKernelConfig();
  if (!config.ok()) return config.status();
  if (p.b_dtype != DType::kF32) {
    if (internal::IsHalfDType(p.b_dtype)) {
      // F16/BF16: converted in registers, each weight row streamed once per decode batch.
      internal::HalfGemm(p, config->isa);
      return absl::OkStatus();
    }
    if (config->int8_dot && internal::HasIntegerDot(p.b_dtype)) {
      // Activations rounded to 8 bits: integer dot products at decode-sized m.
      internal::IntegerGemm(p, config->isa);
      return absl::OkStatus();
    }
    // Every other case goes through its row of the format table (block_formats.h).
    internal::DequantizingGemm(p);
    return absl::OkStatus();
  }
  const auto* b = static_cast<const float*>(p.b);
  if (p.m <= internal::kSkinnyGemmMaxRows) {
    // Decode batches: stream the weights once instead of packing them (see skinny_gemm.h).
    internal::SkinnyGemm(p.a, b, p.c, p.m, p.n, p.k, p.alpha, p.beta, p.row_stride());
    return absl::OkStatus();
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(p.m),
              static_cast<blasint>(p.n), static_cast<blasint>(p.k), p.alpha, p.a,
              static_cast<blasint>(p.k), b, static_cast<blasint>(p.k), p.beta, p.c,
              static_cast<blasint>(p.row_stride()));
  return absl::OkStatus();
}

absl::Status GemmParts(absl::Span<const GemmParams> parts) {
  const absl::StatusOr<internal::CpuKernelConfig>& config = internal::ActiveCpuKernelConfig();
  if (!config.ok()) return config.status();
  bool integer = parts.size() > 1 && config->int8_dot;
  for (const GemmParams& p : parts) {
    integer = integer && p.b_dtype != DType::kF32 && !internal::IsHalfDType(p.b_dtype) &&
              internal::HasIntegerDot(p.b_dtype);
  }
  if (integer) {
    // One rounding of A and one parallel region for all parts (integer_gemm.h).
    internal::IntegerGemmParts(parts, config->isa);
    return absl::OkStatus();
  }
  for (const GemmParams& p : parts) RETURN_IF_ERROR(cpu::Gemm(p));
  return absl::OkStatus();
}

int64_t PackedGemmWeightBytes(DType dtype, int64_t n, int64_t k) {
  // Only the AVX-512 GEMM of the integer path reads a packed layout (packed_gemm.h).
  const absl::StatusOr<internal::CpuKernelConfig>& config = internal::ActiveCpuKernelConfig();
  if (!config.ok() || !config->pack_weights || !config->int8_dot ||
      config->isa != internal::CpuIsa::kAvx512) {
    return 0;
  }
  return internal::PackedWeightBytes(dtype, n, k / internal::kQ8BlockElements);
}

void PackGemmWeights(const void* b, DType dtype, int64_t n, int64_t k, void* packed) {
  internal::PackWeights(static_cast<const uint8_t*>(b), dtype, n, k / internal::kQ8BlockElements,
                        static_cast<uint8_t*>(packed));
}

}  // namespace pagoda::kernels::cpu
