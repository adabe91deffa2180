// The CPU twin of kernels/activation.h, called by its dispatch point with validated params
// (num_tokens > 0, count > 0).
#pragma once

#include "kernels/activation.h"

namespace pagoda::kernels::cpu {

void SiluAndMul(const SiluAndMulParams& params);
void GeluTanhAndMul(const GeluTanhAndMulParams& params);
void SoftCap(const SoftCapParams& params);

}  // namespace pagoda::kernels::cpu
