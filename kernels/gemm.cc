#include "kernels/gemm.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cuda/gemm.h"

namespace pagoda::kernels {

absl::Status GemmParams::Validate() const {
  if (m < 0 || n <= 0 || k <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("gemm: bad shape m=", m, " n=", n, " k=", k, " (need m >= 0, n, k > 0)"));
  }
  if (static_cast<int>(b_dtype) >= kNumDTypes) {
    return absl::InvalidArgumentError(
        absl::StrCat("gemm: unknown weight dtype ", static_cast<int>(b_dtype)));
  }
  const DTypeTraits& t = Traits(b_dtype);
  if (k % t.block_elements != 0) {
    return absl::InvalidArgumentError(absl::StrCat("gemm: k=", k, " is not a whole number of ",
                                                   t.block_elements, "-element ",
                                                   std::string(t.name), " blocks"));
  }
  if (ldc != 0 && ldc < n) {
    return absl::InvalidArgumentError(
        absl::StrCat("gemm: ldc=", ldc, " is below n=", n, " (0 means n)"));
  }
  if (m > 0 && (a == nullptr || b == nullptr || c == nullptr)) {
    return absl::InvalidArgumentError("gemm: null operand");
  }
  return absl::OkStatus();
}

absl::Status Gemm(const GemmParams& params) {
  RETURN_IF_ERROR(params.Validate());
  if (params.m == 0) return absl::OkStatus();
  if (params.device == Device::kCuda) return cuda::Gemm(params);
  return cpu::Gemm(params);
}

absl::Status GemmParts(absl::Span<const GemmParams> parts) {
  for (size_t i = 0; i < parts.size(); ++i) {
    const GemmParams& p = parts[i];
    RETURN_IF_ERROR(p.Validate());
    if (p.a != parts[0].a || p.m != parts[0].m || p.k != parts[0].k ||
        p.device != parts[0].device) {
      return absl::InvalidArgumentError(
          absl::StrCat("gemm parts: part ", i, " (m=", p.m, " k=", p.k,
                       ") does not share the first part's activations, shape and device"));
    }
  }
  if (parts.empty() || parts[0].m == 0) return absl::OkStatus();
  if (parts[0].device == Device::kCuda) {
    for (const GemmParams& p : parts) RETURN_IF_ERROR(cuda::Gemm(p));
    return absl::OkStatus();
  }
  return cpu::GemmParts(parts);
}

int64_t PackedGemmWeightBytes(DType dtype, int64_t n, int64_t k) {
  if (static_cast<int>(dtype) >= kNumDTypes || n <= 0 || k <= 0 ||
      k % Traits(dtype).block_elements != 0) {
    return 0;
  }
  return cpu::PackedGemmWeightBytes(dtype, n, k);
}

absl::Status PackGemmWeights(const void* b, DType dtype, int64_t n, int64_t k, void* packed) {
  if (PackedGemmWeightBytes(dtype, n, k) == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("gemm: no packed layout for ", std::string(DTypeName(dtype)), " [", n, ", ", k,
                     "] weights in this CPU kernel configuration"));
  }
  if (b == nullptr || packed == nullptr) return absl::InvalidArgumentError("gemm: null operand");
  cpu::PackGemmWeights(b, dtype, n, k, packed);
  return absl::OkStatus();
}

}  // namespace pagoda::kernels
