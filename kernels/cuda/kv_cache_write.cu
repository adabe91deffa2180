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

// Token blockIdx.x. Slot s is element row s of the cache seen as [num_blocks * block_size,
// width], width = num_kv_heads * head_dim. A slot of -1 (padding), or one outside the cache (the
// caller checks them), writes nothing.
template <typename Store>
__global__ void WriteKvCacheKernel(const float* __restrict__ key, const float* __restrict__ value,
                                   typename Store::Element* __restrict__ key_cache,
                                   typename Store::Element* __restrict__ value_cache,
                                   const int64_t* __restrict__ slot_mapping, int64_t num_slots,
                                   int64_t width, int64_t key_stride, int64_t value_stride) {
  const int64_t t = blockIdx.x;
  const int64_t slot = slot_mapping[t];
  if (slot < 0 || slot >= num_slots) return;
  const float* k = key + t * key_stride;
  const float* v = value + t * value_stride;
  typename Store::Element* k_out = key_cache + slot * width;
  typename Store::Element* v_out = value_cache + slot * width;
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) {
    k_out[i] = Store::Convert(k[i]);
    v_out[i] = Store::Convert(v[i]);
  }
}

}  // namespace

absl::Status WriteKvCache(const KvCacheWriteParams& p) {
  const int64_t num_slots = p.num_blocks * p.block_size;
  const int64_t width = p.num_kv_heads * p.head_dim;
  const unsigned int blocks = static_cast<unsigned int>(p.num_tokens);
  if (p.cache_dtype == DType::kF32) {
    WriteKvCacheKernel<F32Store><<<blocks, kThreads, 0, CurrentStream()>>>(
        p.key, p.value, static_cast<float*>(p.key_cache), static_cast<float*>(p.value_cache),
        p.slot_mapping, num_slots, width, p.key_stride, p.value_stride);
  } else {  // Validate() admits kF32 and kBF16 only
    WriteKvCacheKernel<Bf16Store><<<blocks, kThreads, 0, CurrentStream()>>>(
        p.key, p.value, static_cast<uint16_t*>(p.key_cache), static_cast<uint16_t*>(p.value_cache),
        p.slot_mapping, num_slots, width, p.key_stride, p.value_stride);
  }
  return internal::LaunchStatus("kv_cache_write");
}

}  // namespace pagoda::kernels::cuda
