// The CPU twin of kernels/rms_norm.h, called by its dispatch point with validated params
// (num_tokens > 0).
#pragma once

#include "kernels/rms_norm.h"

namespace pagoda::kernels::cpu {

void RmsNorm(const RmsNormParams& params);

}  // namespace pagoda::kernels::cpu
