// The CPU twin of kernels/moe_routing.h, called by its dispatch points with validated params
// (num_tokens > 0).
#pragma once

#include "kernels/moe_routing.h"

namespace pagoda::kernels::cpu {

void MoeRoute(const MoeRouteParams& params);
void MoeGather(const MoeGatherParams& params);
void MoeCombine(const MoeCombineParams& params);

}  // namespace pagoda::kernels::cpu
