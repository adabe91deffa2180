#include "kernels/activation.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/cpu/activation.h"
#include "kernels/cuda/activation.h"

namespace pagoda::kernels {

absl::Status SiluAndMulParams::Validate() const {
  if (num_tokens < 0 || d <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("silu_and_mul: bad shape num_tokens=", num_tokens, " d=", d,
                     " (need num_tokens >= 0, d > 0)"));
  }
  if (num_tokens > 0 && (input == nullptr || output == nullptr)) {
    return absl::InvalidArgumentError("silu_and_mul: input or output is null");
  }
  return absl::OkStatus();
}

absl::Status SiluAndMul(const SiluAndMulParams& params) {
  RETURN_IF_ERROR(params.Validate());
  if (params.num_tokens == 0) return absl::OkStatus();
  if (params.device == Device::kCuda) return cuda::SiluAndMul(params);
  cpu::SiluAndMul(params);
  return absl::OkStatus();
}

absl::Status GeluTanhAndMul(const GeluTanhAndMulParams& params) {
  RETURN_IF_ERROR(params.Validate());
  if (params.num_tokens == 0) return absl::OkStatus();
  if (params.device == Device::kCuda) return cuda::GeluTanhAndMul(params);
  cpu::GeluTanhAndMul(params);
  return absl::OkStatus();
}

absl::Status SoftCapParams::Validate() const {
  if (count < 0 || (count > 0 && data == nullptr)) {
    return absl::InvalidArgumentError(
        absl::StrCat("soft_cap: bad buffer count=", count, " (need count >= 0, data set)"));
  }
  if (!std::isfinite(cap) || cap <= 0.0f) {
    return absl::InvalidArgumentError(absl::StrCat("soft_cap: cap must be positive, got ", cap));
  }
  return absl::OkStatus();
}

absl::Status SoftCap(const SoftCapParams& params) {
  RETURN_IF_ERROR(params.Validate());
  if (params.count == 0) return absl::OkStatus();
  if (params.device == Device::kCuda) return cuda::SoftCap(params);
  cpu::SoftCap(params);
  return absl::OkStatus();
}

}  // namespace pagoda::kernels
