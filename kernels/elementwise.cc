#include "kernels/elementwise.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cuda/elementwise.h"

namespace pagoda::kernels {

absl::Status BroadcastRowsParams::Validate() const {
  if (rows < 0 || cols <= 0 || (ldo != 0 && ldo < cols)) {
    return absl::InvalidArgumentError(
        absl::StrCat("broadcast_rows: bad shape rows=", rows, " cols=", cols, " ldo=", ldo,
                     " (need rows >= 0, cols > 0, ldo 0 or >= cols)"));
  }
  if (rows > 0 && (row == nullptr || output == nullptr)) {
    return absl::InvalidArgumentError("broadcast_rows: row or output is null");
  }
  return absl::OkStatus();
}

absl::Status BroadcastRows(const BroadcastRowsParams& params) {
  RETURN_IF_ERROR(params.Validate());
  if (params.rows == 0) return absl::OkStatus();
  if (params.device == Device::kCuda) return cuda::BroadcastRows(params);
  cpu::BroadcastRows(params);
  return absl::OkStatus();
}

absl::Status ScaleParams::Validate() const {
  if (count < 0 || (count > 0 && data == nullptr)) {
    return absl::InvalidArgumentError(
        absl::StrCat("scale: bad buffer count=", count, " (need count >= 0, data set)"));
  }
  if (!std::isfinite(factor)) {
    return absl::InvalidArgumentError(absl::StrCat("scale: factor must be finite, got ", factor));
  }
  return absl::OkStatus();
}

absl::Status Scale(const ScaleParams& params) {
  RETURN_IF_ERROR(params.Validate());
  if (params.count == 0) return absl::OkStatus();
  if (params.device == Device::kCuda) return cuda::Scale(params);
  cpu::Scale(params);
  return absl::OkStatus();
}

absl::Status GatherRowsParams::Validate() const {
  if (num_rows < 0 || num_input_rows < 0 || width <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "gather_rows: bad shape num_rows=", num_rows, " num_input_rows=", num_input_rows,
        " width=", width, " (need num_rows, num_input_rows >= 0, width > 0)"));
  }
  if (num_rows > 0 && (input == nullptr || indices == nullptr || output == nullptr)) {
    return absl::InvalidArgumentError("gather_rows: input, indices or output is null");
  }
  if (device == Device::kCuda && !indices_checked) {
    return absl::InvalidArgumentError(
        "gather_rows: on CUDA the indices are on the device; check them on the host and set "
        "indices_checked");
  }
  return absl::OkStatus();
}

absl::Status GatherRows(const GatherRowsParams& params) {
  RETURN_IF_ERROR(params.Validate());
  if (params.num_rows == 0) return absl::OkStatus();
  if (!params.indices_checked) {
    for (int64_t r = 0; r < params.num_rows; ++r) {
      if (params.indices[r] < 0 || params.indices[r] >= params.num_input_rows) {
        return absl::InvalidArgumentError(absl::StrCat("gather_rows: indices[", r,
                                                       "]=", params.indices[r], " is outside [0, ",
                                                       params.num_input_rows, ")"));
      }
    }
  }
  if (params.device == Device::kCuda) return cuda::GatherRows(params);
  cpu::GatherRows(params);
  return absl::OkStatus();
}

}  // namespace pagoda::kernels
