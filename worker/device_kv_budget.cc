#include "worker/device_kv_budget.h"

#include <algorithm>

namespace pagoda {

int64_t DeviceKvBudget(const kernels::cuda::DeviceMemoryInfo& now, double utilization,
                       int64_t replaced_kv_bytes) {
  const int64_t in_use = std::max<int64_t>(0, now.total_bytes - now.free_bytes - replaced_kv_bytes);
  const auto allowed = static_cast<int64_t>(utilization * static_cast<double>(now.total_bytes));
  return std::max<int64_t>(0, allowed - in_use);
}

}  // namespace pagoda
