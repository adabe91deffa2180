// KV-cache write on the device: one block per token copies its key and value rows into their
// slot (rounding to bf16 as it writes when the cache holds bf16).
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/internal/cuda_status.h"
#include "kernels/cuda/internal/device_math.cuh"
#include "kernels/cuda/kv_cache_write.h"
#include "kernels/cuda/stream.h"

namespace pagoda::kernels::cuda {
namespace {

constexpr int kThreads = 256;

struct F32Store {
  using Element = float;
  __device__ static float Convert(float x) { return x; }
};
struct Bf16Store {
  using Element = uint16_t;
  __device__ static uint16_t Convert(float x) { return internal::FloatToBf16(x); }
};

// Token blockIdx.x. Element i of its num_kv_heads * head_dim goes to head i / head_dim's rows of
// block slot / block_size, row slot % block_size (kernels/kv_cache_write.h's KvCacheOffset). A
// slot of -1 (padding), or one outside the cache (the caller checks them), writes nothing.
template <typename Store>
__global__ void WriteKvCacheKernel(const float* __restrict__ key, const float* __restrict__ value,
                                   typename Store::Element* __restrict__ key_cache,
                                   typename Store::Element* __restrict__ value_cache,
                                   const int64_t* __restrict__ slot_mapping, int64_t num_slots,
                                   int64_t num_kv_heads, int64_t head_dim, int64_t block_size,
                                   int64_t key_stride, int64_t value_stride) {
  const int64_t t = blockIdx.x;
  const int64_t slot = slot_mapping[t];
  if (slot < 0 || slot >= num_slots) return;
  const float* k = key + t * key_stride;
  const float* v = value + t * value_stride;
  const int64_t block_base = slot / block_size * num_kv_heads * block_size;
  const int64_t row = slot % block_size;
  for (int64_t i = threadIdx.x; i < num_kv_heads * head_dim; i += blockDim.x) {
    const int64_t at = ((block_base + i / head_dim * block_size) + row) * head_dim + i % head_dim;
    key_cache[at] = Store::Convert(k[i]);
    value_cache[at] = Store::Convert(v[i]);
  }
}

}  // namespace

absl::Status WriteKvCache(const KvCacheWriteParams& p) {
  const int64_t num_slots = p.num_blocks * p.block_size;
  const unsigned int blocks = static_cast<unsigned int>(p.num_tokens);
  if (p.cache_dtype == DType::kF32) {
    WriteKvCacheKernel<F32Store><<<blocks, kThreads, 0, CurrentStream()>>>(
        p.key, p.value, static_cast<float*>(p.key_cache), static_cast<float*>(p.value_cache),
        p.slot_mapping, num_slots, p.num_kv_heads, p.head_dim, p.block_size, p.key_stride,
        p.value_stride);
  } else {  // Validate() admits kF32 and kBF16 only
    WriteKvCacheKernel<Bf16Store><<<blocks, kThreads, 0, CurrentStream()>>>(
        p.key, p.value, static_cast<uint16_t*>(p.key_cache), static_cast<uint16_t*>(p.value_cache),
        p.slot_mapping, num_slots, p.num_kv_heads, p.head_dim, p.block_size, p.key_stride,
        p.value_stride);
  }
  return internal::LaunchStatus("kv_cache_write");
}

}  // namespace pagoda::kernels::cuda
