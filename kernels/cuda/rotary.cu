// RoPE on the device: one block per (token, head), one thread per rotated pair; the cos/sin
// table is the host cache's (BuildRopeCache, llama3 scaling included) copied to the device, so
// both devices rotate by the same fp32 values.
#include <cuda_runtime.h>

#include <algorithm>

#include "kernels/cuda/internal/cuda_status.h"
#include "kernels/cuda/rotary.h"
#include "kernels/cuda/stream.h"

namespace pagoda::kernels::cuda {
namespace {

// Block (t, h): token t; head h < num_heads of q, else head h - num_heads of k. Pair i rotates
// (x[i], x[i + half]) for kRotateHalf and (x[2i], x[2i + 1]) for kInterleaved, by the angle whose
// cos is cos_sin[pos * head_dim + i] and sin cos_sin[pos * head_dim + half + i].
__global__ void RotaryKernel(float* q, float* k, const int32_t* __restrict__ positions,
                             const float* __restrict__ cos_sin, int64_t max_positions,
                             int64_t num_heads, int64_t head_dim, int64_t q_stride,
                             int64_t k_stride, bool interleaved) {
  const int64_t t = blockIdx.x;
  const int64_t h = blockIdx.y;
  const int32_t pos = positions[t];
  if (pos < 0 || pos >= max_positions) return;  // the caller checks positions; never read past
  float* x = h < num_heads ? q + t * q_stride + h * head_dim
                           : k + t * k_stride + (h - num_heads) * head_dim;
  const int64_t half = head_dim / 2;
  const float* cos = cos_sin + static_cast<int64_t>(pos) * head_dim;
  const float* sin = cos + half;
  for (int64_t i = threadIdx.x; i < half; i += blockDim.x) {
    const int64_t first = interleaved ? 2 * i : i;
    const int64_t second = interleaved ? 2 * i + 1 : i + half;
    const float a = x[first];
    const float b = x[second];
    x[first] = a * cos[i] - b * sin[i];
    x[second] = b * cos[i] + a * sin[i];
  }
}

}  // namespace

absl::Status ApplyRotary(const RotaryParams& p) {
  if (p.num_heads + p.num_kv_heads > 65535) {
    return absl::UnimplementedError("rotary: the CUDA twin handles at most 65535 heads per token");
  }
  const dim3 grid(static_cast<unsigned int>(p.num_tokens),
                  static_cast<unsigned int>(p.num_heads + p.num_kv_heads));
  // One thread per pair, in whole warps, at most 256 (a longer head loops).
  const int64_t half = p.head_dim / 2;
  const int threads = static_cast<int>(std::min<int64_t>(256, (half + 31) / 32 * 32));
  RotaryKernel<<<grid, threads, 0, CurrentStream()>>>(
      p.q, p.k, p.positions, p.device_cos_sin, p.cache->max_positions, p.num_heads, p.head_dim,
      p.q_stride, p.k_stride, p.style == RotaryStyle::kInterleaved);
  return internal::LaunchStatus("rotary");
}

}  // namespace pagoda::kernels::cuda
