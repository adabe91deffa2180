// The CPU twin of kernels/elementwise.h, called by its dispatch point with validated params (at
// least one row or element; indices in range).
#pragma once

#include "kernels/elementwise.h"

namespace pagoda::kernels::cpu {

void BroadcastRows(const BroadcastRowsParams& params);
void Scale(const ScaleParams& params);
void GatherRows(const GatherRowsParams& params);

}  // namespace pagoda::kernels::cpu
