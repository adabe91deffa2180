#include "kernels/cpu/kv_cache_write.h"

#include <cstring>

#include "kernels/cpu/internal/half.h"
#include "kernels/cpu/internal/vec_math.h"

namespace pagoda::kernels::cpu {

void WriteKvCache(const KvCacheWriteParams& p) {
  // A slot row [block_size, num_kv_heads, head_dim] at row `slot` is slot * width elements in.
  const int64_t width = p.num_kv_heads * p.head_dim;
  const bool parallel =
      p.num_tokens > 1 && p.num_tokens * width >= 4 * internal::kParallelMinElements;
  if (p.cache_dtype == DType::kF32) {
    const size_t row_bytes = static_cast<size_t>(width) * sizeof(float);
    auto* key_cache = static_cast<float*>(p.key_cache);
    auto* value_cache = static_cast<float*>(p.value_cache);
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t t = 0; t < p.num_tokens; ++t) {
      const int64_t slot = p.slot_mapping[t];
      if (slot < 0) continue;
      std::memcpy(key_cache + slot * width, p.key + t * p.key_stride, row_bytes);
      std::memcpy(value_cache + slot * width, p.value + t * p.value_stride, row_bytes);
    }
    return;
  }
  auto* key_cache = static_cast<uint16_t*>(p.key_cache);
  auto* value_cache = static_cast<uint16_t*>(p.value_cache);
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t t = 0; t < p.num_tokens; ++t) {
    const int64_t slot = p.slot_mapping[t];
    if (slot < 0) continue;
    const float* __restrict k = p.key + t * p.key_stride;
    const float* __restrict v = p.value + t * p.value_stride;
    uint16_t* __restrict k_out = key_cache + slot * width;
    uint16_t* __restrict v_out = value_cache + slot * width;
#pragma omp simd
    for (int64_t i = 0; i < width; ++i) {
      k_out[i] = internal::FloatToBf16(k[i]);
      v_out[i] = internal::FloatToBf16(v[i]);
    }
  }
}

}  // namespace pagoda::kernels::cpu
