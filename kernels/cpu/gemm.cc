#include "kernels/cpu/gemm.h"

#include <cblas.h>

#include "kernels/cpu/internal/dequantizing_gemm.h"
#include "kernels/cpu/internal/skinny_gemm.h"

namespace pagoda::kernels::cpu {

void Gemm(const GemmParams& p) {
  if (p.b_dtype != DType::kF32) {
    // Every other dtype goes through its row of the format table (block_formats.h).
    internal::DequantizingGemm(p);
    return;
  }
  const auto* b = static_cast<const float*>(p.b);
  if (p.m <= internal::kSkinnyGemmMaxRows) {
    // Decode batches: stream the weights once instead of packing them (see skinny_gemm.h).
    internal::SkinnyGemm(p.a, b, p.c, p.m, p.n, p.k, p.alpha, p.beta);
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(p.m),
              static_cast<blasint>(p.n), static_cast<blasint>(p.k), p.alpha, p.a,
              static_cast<blasint>(p.k), b, static_cast<blasint>(p.k), p.beta, p.c,
              static_cast<blasint>(p.n));
}

}  // namespace pagoda::kernels::cpu
