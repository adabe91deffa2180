#include "common/openmp_wait_policy.h"

#include <unistd.h>

#include <cstdlib>

namespace pagoda {

void ExecWithShortOpenMpSpinUnlessSet(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr || std::getenv("GOMP_SPINCOUNT") != nullptr) {
    return;
  }
  if (setenv("GOMP_SPINCOUNT", kDefaultOpenMpSpinCount, /*overwrite=*/0) != 0) return;
  execv("/proc/self/exe", argv);
  // Still here: the program could not be executed again. Its OpenMP runtime already read the
  // environment, so the variable would only mislead its children: take it back.
  unsetenv("GOMP_SPINCOUNT");
}

}  // namespace pagoda
