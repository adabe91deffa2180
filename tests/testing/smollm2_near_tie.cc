#include "tests/testing/smollm2_near_tie.h"

#include "kernels/cpu/internal/cpu_isa.h"

namespace pagoda::testing {

bool CpuKernelsQuantizeActivations() {
  const auto& config = kernels::internal::ActiveCpuKernelConfig();
  return config.ok() && config->int8_dot;
}

double SmolLm2NearTie() {
  return CpuKernelsQuantizeActivations() ? kSmolLm2NearTieInt8 : kSmolLm2NearTieExact;
}

}  // namespace pagoda::testing
