// The CPU twin of kernels/paged_attention.h, called by its dispatch point with validated params
// (num_tokens > 0, every block id the sequences use inside the cache).
#pragma once

#include "kernels/paged_attention.h"

namespace pagoda::kernels::cpu {

void PagedAttention(const PagedAttentionParams& params);

/// PrefersTransposedKeys for the CPU: the AVX-512 group form is this process's, and block_size is
/// a multiple of its 16-position runs.
bool ReadsTransposedKeys(int64_t block_size);

}  // namespace pagoda::kernels::cpu
