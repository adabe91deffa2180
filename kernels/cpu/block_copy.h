// The CPU twin of kernels/block_copy.h, called by its dispatch point with validated params
// (num_pairs > 0, every block in range).
#pragma once

#include "kernels/block_copy.h"

namespace pagoda::kernels::cpu {

void CopyBlocks(const BlockCopyParams& params);

}  // namespace pagoda::kernels::cpu
