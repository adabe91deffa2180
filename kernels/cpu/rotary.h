// The CPU twin of kernels/rotary.h, called by its dispatch point with validated params
// (num_tokens > 0, every position inside the cache).
#pragma once

#include "kernels/rotary.h"

namespace pagoda::kernels::cpu {

void ApplyRotary(const RotaryParams& params);

}  // namespace pagoda::kernels::cpu
