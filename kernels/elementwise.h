// Small elementwise ops of the model layer, one pass each, so that a model definition never loops
// over an activation on the host (which a device activation would not allow):
//   BroadcastRows: output[r, 0:cols] = row[0:cols] for every r, rows `ldo` floats apart (a bias
//                  laid down before a GEMM accumulates onto it with beta = 1);
//   Scale:         data[i] *= factor (Gemma's embedding normalizer);
//   GatherRows:    output[r, :] = input[indices[r], :] (the sampling rows' hidden states).
//
//   RETURN_IF_ERROR(kernels::BroadcastRows({.row = bias, .output = y, .rows = n, .cols = d}));
//   RETURN_IF_ERROR(kernels::Scale({.data = x, .count = n * d, .factor = 8.0f}));
//   RETURN_IF_ERROR(kernels::GatherRows({.input = hidden, .indices = rows, .output = last,
//                                        .num_rows = r, .num_input_rows = n, .width = d}));
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/device.h"

namespace pagoda::kernels {

struct BroadcastRowsParams {
  const float* row = nullptr;  // [cols]
  float* output = nullptr;     // [rows, ldo]: columns [0, cols) of each row are written
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t ldo = 0;               // floats between output rows; 0 means cols
  Device device = Device::kCpu;  // where row and output live

  int64_t row_stride() const { return ldo == 0 ? cols : ldo; }
  absl::Status Validate() const;
};

absl::Status BroadcastRows(const BroadcastRowsParams& params);

struct ScaleParams {
  float* data = nullptr;  // [count], in place
  int64_t count = 0;
  float factor = 1.0f;  // finite
  Device device = Device::kCpu;

  absl::Status Validate() const;
};

absl::Status Scale(const ScaleParams& params);

struct GatherRowsParams {
  const float* input = nullptr;      // [num_input_rows, width]
  const int64_t* indices = nullptr;  // [num_rows], each in [0, num_input_rows)
  float* output = nullptr;           // [num_rows, width]; does not overlap input
  int64_t num_rows = 0;
  int64_t num_input_rows = 0;
  int64_t width = 0;
  /// The caller checked the indices (ModelRunner builds them): GatherRows skips its O(num_rows)
  /// scan. Required on CUDA, where the indices are on the device.
  bool indices_checked = false;
  Device device = Device::kCpu;  // where input, indices and output live

  /// Shapes and pointers: O(1).
  absl::Status Validate() const;
};

/// Validate(), the index scan unless indices_checked (an index outside the input is
/// InvalidArgument and nothing is written), then the copies.
absl::Status GatherRows(const GatherRowsParams& params);

}  // namespace pagoda::kernels
