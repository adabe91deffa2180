#include "kernels/cpu/kv_cache_write.h"

#include <cstring>

#include "kernels/cpu/internal/half.h"
#include "kernels/cpu/internal/vec_math.h"

namespace pagoda::kernels::cpu {

void WriteKvCache(const KvCacheWriteParams& p) {
  // Token t's head h: head_dim elements at KvCacheOffset(slot, h, ...).
  const int64_t dim = p.head_dim;
  const int64_t width = p.num_kv_heads * dim;
  const bool parallel =
      p.num_tokens > 1 && p.num_tokens * width >= 4 * internal::kParallelMinElements;
  if (p.cache_dtype == DType::kF32) {
    const size_t head_bytes = static_cast<size_t>(dim) * sizeof(float);
    auto* key_cache = static_cast<float*>(p.key_cache);
    auto* value_cache = static_cast<float*>(p.value_cache);
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t t = 0; t < p.num_tokens; ++t) {
      const int64_t slot = p.slot_mapping[t];
      if (slot < 0) continue;
      for (int64_t h = 0; h < p.num_kv_heads; ++h) {
        const int64_t at = KvCacheOffset(slot, h, p.num_kv_heads, dim, p.block_size);
        std::memcpy(key_cache + at, p.key + t * p.key_stride + h * dim, head_bytes);
        std::memcpy(value_cache + at, p.value + t * p.value_stride + h * dim, head_bytes);
      }
    }
    return;
  }
  auto* key_cache = static_cast<uint16_t*>(p.key_cache);
  auto* value_cache = static_cast<uint16_t*>(p.value_cache);
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t t = 0; t < p.num_tokens; ++t) {
    const int64_t slot = p.slot_mapping[t];
    if (slot < 0) continue;
    for (int64_t h = 0; h < p.num_kv_heads; ++h) {
      const float* __restrict k = p.key + t * p.key_stride + h * dim;
      const float* __restrict v = p.value + t * p.value_stride + h * dim;
      const int64_t at = KvCacheOffset(slot, h, p.num_kv_heads, dim, p.block_size);
      uint16_t* __restrict k_out = key_cache + at;
      uint16_t* __restrict v_out = value_cache + at;
#pragma omp simd
      for (int64_t i = 0; i < dim; ++i) {
        k_out[i] = internal::FloatToBf16(k[i]);
        v_out[i] = internal::FloatToBf16(v[i]);
      }
    }
  }
}

}  // namespace pagoda::kernels::cpu
