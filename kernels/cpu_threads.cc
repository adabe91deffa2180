#include "kernels/cpu_threads.h"

#include <omp.h>

namespace pagoda::kernels {

void ReleaseCpuThreads() {
#if defined(__GNUC__) && !defined(__clang__)
  // libgomp (GCC's runtime): frees the calling thread's pool and lowers its count of managed
  // threads. LLVM's libomp (the clang sanitizer builds) has no such count, and its pause is
  // process-wide: another thread's parallel region could be running.
  omp_pause_resource(omp_pause_soft, omp_get_initial_device());
#endif
}

}  // namespace pagoda::kernels
