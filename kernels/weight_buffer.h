// Host memory for the weights the CPU kernels stream at every decode step: anonymous, zero-filled,
// 2 MiB-aligned memory that asks the OS for transparent huge pages (madvise MADV_HUGEPAGE) unless
// PAGODA_CPU_HUGE_PAGES=0 (kernels/cpu/internal/cpu_isa.h). With 4 KiB pages a stream over
// hundreds of MB walks the page tables every 4 KiB and its hardware prefetch stops at each page
// boundary; in 2 MiB pages the decode GEMMs read faster (docs/performance.md). Hosts whose
// transparent huge pages are "never" get ordinary pages, with the same contents.
//
//   ASSIGN_OR_RETURN(std::shared_ptr<std::byte> buffer, AllocateWeightBuffer(total_bytes));
//   ASSIGN_OR_RETURN(Tensor w, Tensor::View(dtype, shape, buffer.get() + offset, buffer));
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"

namespace pagoda::kernels {

/// `bytes` (> 0) of zeroed host memory, 2 MiB aligned, freed with the last copy of the pointer.
/// ResourceExhausted naming the bytes when the OS refuses them.
absl::StatusOr<std::shared_ptr<std::byte>> AllocateWeightBuffer(int64_t bytes);

/// Whether AllocateWeightBuffer asks for huge pages (PAGODA_CPU_HUGE_PAGES is not 0, and the
/// CPU kernel configuration is valid).
bool WeightBuffersUseHugePages();

}  // namespace pagoda::kernels
