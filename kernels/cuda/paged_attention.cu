// Paged attention on the device, straightforward: one warp per (query token, query head) walks
// the token's causal context position by position with an online softmax in fp32. Lane l holds
// the head dims l, l + 32, ... (at most 8 of them: head_dim <= 256), so a score is a warp-wide
// sum (shuffles, no shared memory) and every lane keeps its own slice of the output accumulator.
// Prefill chunks and decodes share the kernel (a decode is a 1-token chunk); speed work (split
// context, tiling several queries over one K/V read) waits for a device to measure it on.
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/internal/cuda_status.h"
#include "kernels/cuda/internal/device_math.cuh"
#include "kernels/cuda/paged_attention.h"
#include "kernels/cuda/stream.h"

namespace pagoda::kernels::cuda {
namespace {

using internal::kWarpSize;
constexpr int kMaxDimsPerLane = 8;  // head_dim <= 8 * 32

struct F32Cache {
  using Element = float;
  __device__ static float Load(const float* p) { return *p; }
};
struct Bf16Cache {
  using Element = uint16_t;
  __device__ static float Load(const uint16_t* p) { return internal::Bf16ToFloat(*p); }
};

// The sequence whose query tokens [query_start_loc[s], query_start_loc[s + 1]) hold token t: the
// last s with query_start_loc[s] <= t (empty sequences before it share its start).
__device__ int64_t SequenceOf(const int32_t* query_start_loc, int64_t num_seqs, int64_t t) {
  int64_t lo = 0;
  int64_t hi = num_seqs;  // answer in [lo, hi)
  while (hi - lo > 1) {
    const int64_t mid = (lo + hi) / 2;
    if (query_start_loc[mid] <= t) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return lo;
}

__device__ float WarpSum(float v) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    v += __shfl_xor_sync(0xffffffffu, v, offset);
  }
  return v;
}

// Block (t, h), one warp: query token t, query head h, KV head h / (num_heads / num_kv_heads).
template <typename Cache>
__global__ void PagedAttentionKernel(float* __restrict__ out, const float* __restrict__ q,
                                     const typename Cache::Element* __restrict__ key_cache,
                                     const typename Cache::Element* __restrict__ value_cache,
                                     const int32_t* __restrict__ block_tables,
                                     const int32_t* __restrict__ query_start_loc,
                                     const int32_t* __restrict__ seq_lens, int64_t num_seqs,
                                     int64_t num_heads, int64_t num_kv_heads, int64_t head_dim,
                                     int64_t block_size, int64_t num_blocks,
                                     int64_t max_blocks_per_seq, int64_t q_stride, float scale,
                                     int64_t sliding_window, float logit_softcap) {
  const int64_t t = blockIdx.x;
  const int64_t h = blockIdx.y;
  const int lane = threadIdx.x;
  const int64_t s = SequenceOf(query_start_loc, num_seqs, t);
  const int64_t q_len = int64_t{query_start_loc[s + 1]} - query_start_loc[s];
  const int64_t seq_len = seq_lens[s];
  // Query token j of the chunk sits at position seq_len - q_len + j and sees [0, position], or
  // (position - sliding_window, position] under a window.
  const int64_t position = seq_len - q_len + (t - query_start_loc[s]);
  const int64_t first = sliding_window > 0 ? max(int64_t{0}, position - sliding_window + 1) : 0;
  const int64_t kv_head = h / (num_heads / num_kv_heads);
  const int32_t* table = block_tables + s * max_blocks_per_seq;

  float q_slice[kMaxDimsPerLane];
  float acc[kMaxDimsPerLane];
  for (int k = 0; k < kMaxDimsPerLane; ++k) {
    const int64_t i = lane + k * kWarpSize;
    q_slice[k] = i < head_dim ? q[t * q_stride + h * head_dim + i] : 0.0f;
    acc[k] = 0.0f;
  }
  float running_max = -INFINITY;
  float running_sum = 0.0f;
  for (int64_t p = first; p <= position; ++p) {
    const int32_t block = table[p / block_size];
    if (block < 0 || block >= num_blocks) continue;  // the caller checks block ids
    const int64_t row =
        ((int64_t{block} * block_size + p % block_size) * num_kv_heads + kv_head) * head_dim;
    float partial = 0.0f;
    for (int k = 0; k < kMaxDimsPerLane; ++k) {
      const int64_t i = lane + k * kWarpSize;
      if (i < head_dim) partial += q_slice[k] * Cache::Load(key_cache + row + i);
    }
    float score = WarpSum(partial) * scale;
    if (logit_softcap > 0.0f) score = logit_softcap * tanhf(score / logit_softcap);
    // Online softmax: rescale what was summed under the old maximum.
    const float new_max = fmaxf(running_max, score);
    const float correction = expf(running_max - new_max);
    const float weight = expf(score - new_max);
    running_sum = running_sum * correction + weight;
    for (int k = 0; k < kMaxDimsPerLane; ++k) {
      const int64_t i = lane + k * kWarpSize;
      if (i < head_dim) {
        acc[k] = acc[k] * correction + weight * Cache::Load(value_cache + row + i);
      }
    }
    running_max = new_max;
  }
  float* o = out + (t * num_heads + h) * head_dim;
  for (int k = 0; k < kMaxDimsPerLane; ++k) {
    const int64_t i = lane + k * kWarpSize;
    if (i < head_dim) o[i] = acc[k] / running_sum;
  }
}

}  // namespace

absl::Status PagedAttention(const PagedAttentionParams& p) {
  if (p.num_heads > 65535) {
    return absl::UnimplementedError("paged_attention: the CUDA twin handles at most 65535 heads");
  }
  const dim3 grid(static_cast<unsigned int>(p.num_tokens), static_cast<unsigned int>(p.num_heads));
  if (p.cache_dtype == DType::kF32) {
    PagedAttentionKernel<F32Cache><<<grid, kWarpSize, 0, CurrentStream()>>>(
        p.out, p.q, static_cast<const float*>(p.key_cache),
        static_cast<const float*>(p.value_cache), p.block_tables, p.query_start_loc, p.seq_lens,
        p.num_seqs, p.num_heads, p.num_kv_heads, p.head_dim, p.block_size, p.num_blocks,
        p.max_blocks_per_seq, p.q_stride, p.scale, p.sliding_window, p.logit_softcap);
  } else {  // Validate() admits kF32 and kBF16 only
    PagedAttentionKernel<Bf16Cache><<<grid, kWarpSize, 0, CurrentStream()>>>(
        p.out, p.q, static_cast<const uint16_t*>(p.key_cache),
        static_cast<const uint16_t*>(p.value_cache), p.block_tables, p.query_start_loc, p.seq_lens,
        p.num_seqs, p.num_heads, p.num_kv_heads, p.head_dim, p.block_size, p.num_blocks,
        p.max_blocks_per_seq, p.q_stride, p.scale, p.sliding_window, p.logit_softcap);
  }
  return internal::LaunchStatus("paged_attention");
}

}  // namespace pagoda::kernels::cuda
