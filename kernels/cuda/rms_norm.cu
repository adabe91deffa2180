// RMSNorm on the device: one block per token, the sum of squares reduced in fp32 across the block.
#include <cuda_runtime.h>

#include "kernels/cuda/internal/cuda_status.h"
#include "kernels/cuda/internal/device_math.cuh"
#include "kernels/cuda/rms_norm.h"
#include "kernels/cuda/stream.h"

namespace pagoda::kernels::cuda {
namespace {

constexpr int kThreads = 256;

// Row blockIdx.x, which starts where RmsNormParams::RowOffset says. Each thread reads and writes
// only the columns i = threadIdx.x + k * blockDim.x, so output may alias input: a column is read
// (pass 1) before the same thread writes it (pass 2).
__global__ void RmsNormKernel(const float* input, const float* __restrict__ weight, float* output,
                              float* residual, int64_t hidden_size, int64_t rows_per_group,
                              int64_t group_stride, float eps) {
  const int64_t r = blockIdx.x;
  const int64_t row = rows_per_group == 0
                          ? r * hidden_size
                          : r / rows_per_group * group_stride + r % rows_per_group * hidden_size;
  const float* in = input + row;
  float* out = output + row;
  float* res = residual != nullptr ? residual + row : nullptr;

  // Pass 1: the fused residual add (residual += input), and the sum of squares of what is normed.
  float sum_sq = 0.0f;
  for (int64_t i = threadIdx.x; i < hidden_size; i += blockDim.x) {
    float x = in[i];
    if (res != nullptr) {
      x += res[i];
      res[i] = x;
    }
    sum_sq += x * x;
  }
  sum_sq = internal::BlockSum(sum_sq);
  const float inv_rms = 1.0f / sqrtf(sum_sq / static_cast<float>(hidden_size) + eps);

  // Pass 2: scale. The normed values are re-read from residual (fused) or input (plain).
  const float* x = res != nullptr ? res : in;
  for (int64_t i = threadIdx.x; i < hidden_size; i += blockDim.x) {
    out[i] = x[i] * inv_rms * weight[i];
  }
}

}  // namespace

absl::Status RmsNorm(const RmsNormParams& p) {
  RmsNormKernel<<<static_cast<unsigned int>(p.num_tokens), kThreads, 0, CurrentStream()>>>(
      p.input, p.weight, p.output, p.residual, p.hidden_size, p.rows_per_group, p.group_stride,
      p.eps);
  return internal::LaunchStatus("rms_norm");
}

}  // namespace pagoda::kernels::cuda
