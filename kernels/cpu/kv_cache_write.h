// The CPU twin of kernels/kv_cache_write.h, called by its dispatch point with validated params
// (num_tokens > 0, every slot -1 or inside the cache).
#pragma once

#include "kernels/kv_cache_write.h"

namespace pagoda::kernels::cpu {

void WriteKvCache(const KvCacheWriteParams& params);

}  // namespace pagoda::kernels::cpu
