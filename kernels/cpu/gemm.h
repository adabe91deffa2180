// The CPU twin of kernels/gemm.h, called by its dispatch point with validated params (m > 0).
// Fails only where the CPU kernels' configuration from the environment is bad (cpu_isa.h).
#pragma once

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "kernels/gemm.h"

namespace pagoda::kernels::cpu {

absl::Status Gemm(const GemmParams& params);

/// kernels::GemmParts: validated parts sharing a, m (> 0), k.
absl::Status GemmParts(absl::Span<const GemmParams> parts);
/// kernels::PackedGemmWeightBytes and PackGemmWeights for a valid dtype and shape.
int64_t PackedGemmWeightBytes(DType dtype, int64_t n, int64_t k);
void PackGemmWeights(const void* b, DType dtype, int64_t n, int64_t k, void* packed);

}  // namespace pagoda::kernels::cpu
