// The gated activations and the soft-cap on the device: one thread per output element.
#include <cuda_runtime.h>

#include "kernels/cuda/activation.h"
#include "kernels/cuda/internal/cuda_status.h"
#include "kernels/cuda/stream.h"

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

// As SiluAndMulKernel with gelu_tanh(gate) = gate / (1 + exp(-2 sqrt(2/pi) (x + 0.044715 x^3))),
// which is 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (the CPU twin's form).
__global__ void GeluTanhAndMulKernel(const float* __restrict__ input, float* __restrict__ output,
                                     int64_t num_tokens, int64_t d) {
  constexpr float kTwoSqrtTwoOverPi = 1.5957691216057308f;  // 2 * sqrt(2 / pi)
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= num_tokens * d) return;
  const int64_t t = idx / d;
  const int64_t i = idx % d;
  const float gate = input[t * 2 * d + i];
  const float up = input[t * 2 * d + d + i];
  const float e = expf(-kTwoSqrtTwoOverPi * (gate + 0.044715f * gate * gate * gate));
  output[idx] = gate / (1.0f + e) * up;
}

// x <- cap * tanh(x / cap), as cap - 2 cap / (1 + exp(2 x / cap)) (the CPU twin's form).
__global__ void SoftCapKernel(float* data, int64_t count, float cap) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= count) return;
  data[idx] = cap - 2.0f * cap / (1.0f + expf(2.0f / cap * data[idx]));
}

}  // namespace

absl::Status SiluAndMul(const SiluAndMulParams& p) {
  SiluAndMulKernel<<<internal::BlocksFor(p.num_tokens * p.d, kThreads), kThreads, 0,
                     CurrentStream()>>>(p.input, p.output, p.num_tokens, p.d);
  return internal::LaunchStatus("silu_and_mul");
}

absl::Status GeluTanhAndMul(const GeluTanhAndMulParams& p) {
  GeluTanhAndMulKernel<<<internal::BlocksFor(p.num_tokens * p.d, kThreads), kThreads, 0,
                         CurrentStream()>>>(p.input, p.output, p.num_tokens, p.d);
  return internal::LaunchStatus("gelu_tanh_and_mul");
}

absl::Status SoftCap(const SoftCapParams& p) {
  SoftCapKernel<<<internal::BlocksFor(p.count, kThreads), kThreads, 0, CurrentStream()>>>(
      p.data, p.count, p.cap);
  return internal::LaunchStatus("soft_cap");
}

}  // namespace pagoda::kernels::cuda
