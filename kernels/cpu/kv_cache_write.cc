#include "kernels/cpu/kv_cache_write.h"

#include "kernels/cpu/internal/half.h"
#include "kernels/cpu/internal/vec_math.h"

namespace pagoda::kernels::cpu {
namespace {

// A key or value element in the cache's type: fp32 as is, bf16 rounded to nearest even.
template <typename T>
inline T ToCache(float x) {
  if constexpr (sizeof(T) == sizeof(float)) {
    return x;
  } else {
    return internal::FloatToBf16(x);
  }
}

// Token t's head h: the value's head_dim elements at KvCacheOffset(slot, h, ...), the key's there
// too, or, stored transposed, block_size apart from TransposedKeyOffset(block, row, h, 0, ...).
template <typename T>
void Write(const KvCacheWriteParams& p, bool parallel) {
  const int64_t dim = p.head_dim;
  const int64_t bs = p.block_size;
  auto* key_cache = static_cast<T*>(p.key_cache);
  auto* value_cache = static_cast<T*>(p.value_cache);
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t t = 0; t < p.num_tokens; ++t) {
    const int64_t slot = p.slot_mapping[t];
    if (slot < 0) continue;
    for (int64_t h = 0; h < p.num_kv_heads; ++h) {
      const float* __restrict k = p.key + t * p.key_stride + h * dim;
      const float* __restrict v = p.value + t * p.value_stride + h * dim;
      const int64_t at = KvCacheOffset(slot, h, p.num_kv_heads, dim, bs);
      T* __restrict v_out = value_cache + at;
#pragma omp simd
      for (int64_t i = 0; i < dim; ++i) v_out[i] = ToCache<T>(v[i]);
      if (p.keys_transposed) {
        T* __restrict k_out =
            key_cache + TransposedKeyOffset(slot / bs, slot % bs, h, 0, p.num_kv_heads, dim, bs);
        for (int64_t i = 0; i < dim; ++i) k_out[i * bs] = ToCache<T>(k[i]);
      } else {
        T* __restrict k_out = key_cache + at;
#pragma omp simd
        for (int64_t i = 0; i < dim; ++i) k_out[i] = ToCache<T>(k[i]);
      }
    }
  }
}

}  // namespace

void WriteKvCache(const KvCacheWriteParams& p) {
  const int64_t width = p.num_kv_heads * p.head_dim;
  const bool parallel =
      p.num_tokens > 1 && p.num_tokens * width >= 4 * internal::kParallelMinElements;
  if (p.cache_dtype == DType::kF32) {
    Write<float>(p, parallel);
  } else {
    Write<uint16_t>(p, parallel);
  }
}

}  // namespace pagoda::kernels::cpu
