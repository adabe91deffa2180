// The CPU twin of kernels/paged_attention.h, called by its dispatch point with validated params
// (num_tokens > 0, every block id the sequences use inside the cache).
#pragma once

#include "kernels/paged_attention.h"

namespace pagoda::kernels::cpu {

void PagedAttention(const PagedAttentionParams& params);

}  // namespace pagoda::kernels::cpu
