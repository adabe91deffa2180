// Block copies on the device: one cudaMemcpyAsync per (pair, tensor) on the current stream
// (kernels/cuda/stream.h), in pair order, so a later pair sees what an earlier one wrote (as on
// the CPU). cudaMemcpyDefault lets unified addressing tell device from host memory, so the same
// call swaps blocks out to and in from a host cache.
#include <cuda_runtime.h>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/cuda/block_copy.h"
#include "kernels/cuda/internal/cuda_status.h"
#include "kernels/cuda/stream.h"

namespace pagoda::kernels::cuda {

absl::Status CopyBlocks(const BlockCopyParams& p) {
  const size_t bytes = static_cast<size_t>(p.block_bytes);
  for (int64_t i = 0; i < p.num_pairs; ++i) {
    const int64_t s = p.block_pairs[2 * i];
    const int64_t d = p.block_pairs[2 * i + 1];
    for (int64_t t = 0; t < p.num_tensors; ++t) {
      const char* src = static_cast<const char*>(p.src[t]) + s * p.block_bytes;
      char* dst = static_cast<char*>(p.dst[t]) + d * p.block_bytes;
      if (src == dst) continue;  // a block onto itself stays as it is
      RETURN_IF_ERROR(
          internal::CudaStatus(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, CurrentStream()),
                               absl::StrCat("block_copy ", s, " -> ", d, " of tensor ", t)));
    }
  }
  return absl::OkStatus();
}

}  // namespace pagoda::kernels::cuda
