// Device helpers shared by the kernels of kernels/cuda/: a block-wide sum and the 16-bit float
// conversions, rounding exactly as the CPU twins do (kernels/cpu/internal/half.h), so that a
// bf16 KV cache written on either device holds the same bits.
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

namespace pagoda::kernels::cuda::internal {

inline constexpr int kWarpSize = 32;

/// The sum of `value` over the block (blockDim.x a multiple of 32, at most 1024), returned to
/// every thread. Call at most once per kernel: its shared slots are not reset between calls.
__device__ inline float BlockSum(float value) {
  __shared__ float warp_sums[kWarpSize];
  __shared__ float total;
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    value += __shfl_xor_sync(0xffffffffu, value, offset);
  }
  if (lane == 0) warp_sums[warp] = value;
  __syncthreads();
  if (warp == 0) {
    const int num_warps = blockDim.x / kWarpSize;
    float sum = lane < num_warps ? warp_sums[lane] : 0.0f;
    for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
      sum += __shfl_xor_sync(0xffffffffu, sum, offset);
    }
    if (lane == 0) total = sum;
  }
  __syncthreads();
  return total;
}

/// bfloat16 bits -> float (exact).
__device__ inline float Bf16ToFloat(uint16_t bits) {
  return __uint_as_float(static_cast<uint32_t>(bits) << 16);
}

/// float -> bfloat16 bits: round to nearest even; a NaN is quieted and keeps its sign (as
/// internal::FloatToBf16 on the CPU).
__device__ inline uint16_t FloatToBf16(float f) {
  const uint32_t bits = __float_as_uint(f);
  const uint32_t rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
  const uint32_t quiet_nan = (bits >> 16) | 0x40u;
  return static_cast<uint16_t>((bits & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded);
}

/// float16 bits -> float (exact for every finite value).
__device__ inline float HalfToFloat(uint16_t bits) { return __half2float(__ushort_as_half(bits)); }

}  // namespace pagoda::kernels::cuda::internal
