#include "common/openmp_wait_policy.h"

#include <unistd.h>

#include <cstdlib>

namespace pagoda {

void ExecWithPassiveOpenMpWaitUnlessSet(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr || std::getenv("GOMP_SPINCOUNT") != nullptr) {
    return;
  }
  if (setenv("OMP_WAIT_POLICY", "PASSIVE", /*overwrite=*/0) != 0) return;
  execv("/proc/self/exe", argv);
  // Still here: the program could not be executed again. Its OpenMP runtime already read the
  // environment, so the variable would only mislead its children: take it back.
  unsetenv("OMP_WAIT_POLICY");
}

}  // namespace pagoda
