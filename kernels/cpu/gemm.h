// The CPU twin of kernels/gemm.h, called by its dispatch point with validated params (m > 0).
#pragma once

#include "kernels/gemm.h"

namespace pagoda::kernels::cpu {

void Gemm(const GemmParams& params);

}  // namespace pagoda::kernels::cpu
