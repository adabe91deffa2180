#include "kernels/cpu_threads.h"

#include <omp.h>

namespace pagoda::kernels {

void ReleaseCpuThreads() {
  // libgomp: frees the calling thread's pool and lowers its count of managed threads.
  omp_pause_resource(omp_pause_soft, omp_get_initial_device());
}

}  // namespace pagoda::kernels
