// The elementwise ops on the device: one thread per output element.
#include <cuda_runtime.h>

#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/internal/cuda_status.h"
#include "kernels/cuda/stream.h"

namespace pagoda::kernels::cuda {
namespace {

constexpr int kThreads = 256;

// Element idx of the [rows, cols] window: row r = idx / cols, column i = idx % cols.
__global__ void BroadcastRowsKernel(const float* __restrict__ row, float* __restrict__ output,
                                    int64_t rows, int64_t cols, int64_t stride) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= rows * cols) return;
  const int64_t r = idx / cols;
  const int64_t i = idx % cols;
  output[r * stride + i] = row[i];
}

__global__ void ScaleKernel(float* data, int64_t count, float factor) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= count) return;
  data[idx] *= factor;
}

// Element idx of the [num_rows, width] output: row r = idx / width, column i = idx % width. An
// index outside the input (the caller checked them) leaves its row unwritten.
__global__ void GatherRowsKernel(const float* __restrict__ input,
                                 const int64_t* __restrict__ indices, float* __restrict__ output,
                                 int64_t num_rows, int64_t num_input_rows, int64_t width) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= num_rows * width) return;
  const int64_t r = idx / width;
  const int64_t i = idx % width;
  const int64_t source = indices[r];
  if (source < 0 || source >= num_input_rows) return;
  output[idx] = input[source * width + i];
}

}  // namespace

absl::Status BroadcastRows(const BroadcastRowsParams& p) {
  BroadcastRowsKernel<<<internal::BlocksFor(p.rows * p.cols, kThreads), kThreads, 0,
                        CurrentStream()>>>(p.row, p.output, p.rows, p.cols, p.row_stride());
  return internal::LaunchStatus("broadcast_rows");
}

absl::Status Scale(const ScaleParams& p) {
  ScaleKernel<<<internal::BlocksFor(p.count, kThreads), kThreads, 0, CurrentStream()>>>(
      p.data, p.count, p.factor);
  return internal::LaunchStatus("scale");
}

absl::Status GatherRows(const GatherRowsParams& p) {
  GatherRowsKernel<<<internal::BlocksFor(p.num_rows * p.width, kThreads), kThreads, 0,
                     CurrentStream()>>>(p.input, p.indices, p.output, p.num_rows, p.num_input_rows,
                                        p.width);
  return internal::LaunchStatus("gather_rows");
}

}  // namespace pagoda::kernels::cuda
