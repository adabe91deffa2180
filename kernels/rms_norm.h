// RMSNorm, plain and fused with the residual add of a transformer block.
//   out[t, :] = x[t, :] / sqrt(mean(x[t, :]^2) + eps) * weight[:]
// The fused form first adds: residual[t, :] += x[t, :], then normalizes the new residual into
// out (which may alias x). Accumulation is in fp32 (fp64 is not needed at these widths).
//
//   RETURN_IF_ERROR(kernels::RmsNorm({.input = x, .weight = w, .output = y,
//                                     .num_tokens = n, .hidden_size = d, .eps = 1e-5f}));
//
// The rows may also come in groups spaced apart, e.g. the query heads of each token inside a
// fused QKV activation (per-head qk-norm), normalized in place in one call:
//
//   kernels::RmsNorm({.input = q, .weight = w, .output = q, .num_tokens = tokens * heads,
//                     .hidden_size = head_dim, .rows_per_group = heads,
//                     .group_stride = qkv_width, .eps = eps});
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/device.h"

namespace pagoda::kernels {

struct RmsNormParams {
  const float* input = nullptr;   // [num_tokens, hidden_size]
  const float* weight = nullptr;  // [hidden_size]
  float* output = nullptr;        // [num_tokens, hidden_size]; may alias input
  float* residual = nullptr;      // [num_tokens, hidden_size]; set for the fused add form
  int64_t num_tokens = 0;         // rows
  int64_t hidden_size = 0;
  // Grouped rows: row r starts at (r / rows_per_group) * group_stride + (r % rows_per_group) *
  // hidden_size in input, output and residual alike; group_stride >= rows_per_group *
  // hidden_size. 0: the rows are contiguous.
  int64_t rows_per_group = 0;
  int64_t group_stride = 0;
  float eps = 1e-6f;
  Device device = Device::kCpu;  // where input, weight, output and residual live

  absl::Status Validate() const;
  /// Where row `row` starts, in floats from each array's start.
  int64_t RowOffset(int64_t row) const {
    if (rows_per_group == 0) return row * hidden_size;
    return row / rows_per_group * group_stride + row % rows_per_group * hidden_size;
  }
};

/// output = RmsNorm(input) when residual is null; otherwise residual += input and
/// output = RmsNorm(residual).
absl::Status RmsNorm(const RmsNormParams& params);

}  // namespace pagoda::kernels
