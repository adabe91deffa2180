// The CPU twins of kernels/dequantize.h, called by its dispatch point with validated params.
#pragma once

#include "kernels/dequantize.h"

namespace pagoda::kernels::cpu {

void Dequantize(const DequantizeParams& params);
void Quantize(const QuantizeParams& params);

}  // namespace pagoda::kernels::cpu
