#include "kernels/dequantize.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/cpu/dequantize.h"

namespace pagoda::kernels {
namespace {

absl::Status CheckConversion(const char* op, DType dtype, const void* src, const void* dst,
                             int64_t num_elements) {
  if (static_cast<int>(dtype) >= kNumDTypes) {
    return absl::InvalidArgumentError(
        absl::StrCat(op, ": unknown dtype ", static_cast<int>(dtype)));
  }
  const DTypeTraits& t = Traits(dtype);
  if (num_elements < 0 || num_elements % t.block_elements != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(op, ": ", num_elements, " elements of ", std::string(t.name),
                     " are not a whole number of ", t.block_elements, "-element blocks"));
  }
  if (num_elements > 0 && (src == nullptr || dst == nullptr)) {
    return absl::InvalidArgumentError(absl::StrCat(op, ": null operand"));
  }
  return absl::OkStatus();
}

}  // namespace

bool CanQuantizeTo(DType dtype) {
  return dtype == DType::kF32 || dtype == DType::kF16 || dtype == DType::kBF16 ||
         dtype == DType::kQ8_0;
}

absl::Status DequantizeParams::Validate() const {
  return CheckConversion("dequantize", dtype, src, dst, num_elements);
}

absl::Status QuantizeParams::Validate() const {
  RETURN_IF_ERROR(CheckConversion("quantize", dtype, src, dst, num_elements));
  if (!CanQuantizeTo(dtype)) {
    return absl::InvalidArgumentError(
        absl::StrCat("quantize: no conversion from float32 to ", std::string(DTypeName(dtype)),
                     " (supported: float32, float16, bfloat16, q8_0)"));
  }
  return absl::OkStatus();
}

absl::Status Dequantize(const DequantizeParams& params) {
  RETURN_IF_ERROR(params.Validate());
  cpu::Dequantize(params);
  return absl::OkStatus();
}

absl::Status Quantize(const QuantizeParams& params) {
  RETURN_IF_ERROR(params.Validate());
  cpu::Quantize(params);
  return absl::OkStatus();
}

}  // namespace pagoda::kernels
