#include "kernels/rms_norm.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/cpu/rms_norm.h"
#include "kernels/cuda/rms_norm.h"

namespace pagoda::kernels {

absl::Status RmsNormParams::Validate() const {
  if (num_tokens < 0 || hidden_size <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("rms_norm: bad shape num_tokens=", num_tokens,
                                                   " hidden_size=", hidden_size,
                                                   " (need num_tokens >= 0, hidden_size > 0)"));
  }
  if (!(eps >= 0.0f) || !std::isfinite(eps)) {
    return absl::InvalidArgumentError(
        absl::StrCat("rms_norm: eps must be finite and >= 0, got ", eps));
  }
  if (rows_per_group < 0 || (rows_per_group == 0 && group_stride != 0) ||
      (rows_per_group > 0 && group_stride < rows_per_group * hidden_size)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "rms_norm: bad row groups rows_per_group=", rows_per_group, " group_stride=", group_stride,
        " (need 0 and 0, or a group_stride >= rows_per_group * hidden_size = ",
        rows_per_group * hidden_size, ")"));
  }
  if (weight == nullptr) return absl::InvalidArgumentError("rms_norm: weight is null");
  if (num_tokens > 0 && (input == nullptr || output == nullptr)) {
    return absl::InvalidArgumentError("rms_norm: input or output is null");
  }
  if (residual != nullptr && (residual == input || residual == output)) {
    return absl::InvalidArgumentError("rms_norm: residual must not alias input or output");
  }
  return absl::OkStatus();
}

absl::Status RmsNorm(const RmsNormParams& params) {
  RETURN_IF_ERROR(params.Validate());
  if (params.num_tokens == 0) return absl::OkStatus();
  if (params.device == Device::kCuda) return cuda::RmsNorm(params);
  cpu::RmsNorm(params);
  return absl::OkStatus();
}

}  // namespace pagoda::kernels
