#include "kernels/gemm.h"

#include <cblas.h>

#include "absl/strings/str_cat.h"
#include "kernels/cpu/internal/skinny_gemm.h"

namespace pagoda::kernels {

absl::Status GemmParams::Validate() const {
  if (m < 0 || n <= 0 || k <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("gemm: bad shape m=", m, " n=", n, " k=", k, " (need m >= 0, n, k > 0)"));
  }
  if (m > 0 && (a == nullptr || b == nullptr || c == nullptr)) {
    return absl::InvalidArgumentError("gemm: null operand");
  }
  return absl::OkStatus();
}

absl::Status Gemm(const GemmParams& p) {
  if (absl::Status s = p.Validate(); !s.ok()) return s;
  if (p.m == 0) return absl::OkStatus();
  if (p.m <= internal::kSkinnyGemmMaxRows) {
    // Decode batches: stream the weights once instead of packing them (see skinny_gemm.h).
    internal::SkinnyGemm(p.a, p.b, p.c, p.m, p.n, p.k, p.alpha, p.beta);
    return absl::OkStatus();
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(p.m),
              static_cast<blasint>(p.n), static_cast<blasint>(p.k), p.alpha, p.a,
              static_cast<blasint>(p.k), p.b, static_cast<blasint>(p.k), p.beta, p.c,
              static_cast<blasint>(p.n));
  return absl::OkStatus();
}

}  // namespace pagoda::kernels
