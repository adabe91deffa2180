// SiLU-and-mul on the device: one thread per output element.
#include <cuda_runtime.h>

#include "kernels/cuda/activation.h"
#include "kernels/cuda/internal/cuda_status.h"

namespace pagoda::kernels::cuda {
namespace {

constexpr int kThreads = 256;

// Element idx of the [num_tokens, d] output: token t = idx / d, column i = idx % d; its gate is
// input[t, i] and its up projection input[t, d + i].
__global__ void SiluAndMulKernel(const float* __restrict__ input, float* __restrict__ output,
                                 int64_t num_tokens, int64_t d) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= num_tokens * d) return;
  const int64_t t = idx / d;
  const int64_t i = idx % d;
  const float gate = input[t * 2 * d + i];
  const float up = input[t * 2 * d + d + i];
  output[idx] = gate / (1.0f + expf(-gate)) * up;
}

}  // namespace

absl::Status SiluAndMul(const SiluAndMulParams& p) {
  SiluAndMulKernel<<<internal::BlocksFor(p.num_tokens * p.d, kThreads), kThreads>>>(
      p.input, p.output, p.num_tokens, p.d);
  return internal::LaunchStatus("silu_and_mul");
}

}  // namespace pagoda::kernels::cuda
