// GEMM for few activation rows (decode batches): C[m, n] = alpha * A[m, k] · B[n, k]^T + beta * C.
//
// BLAS sgemm packs both operands on every call; when m is small, packing the weights B costs as
// much as the multiplication, and the step is bound by reading B from memory anyway. This kernel
// streams B exactly once: each thread takes a contiguous range of B's rows (so both cores pull
// memory), and every group of 4 weight rows is multiplied with all m activation rows while it
// sits in L1.
#pragma once

#include <cstdint>

namespace pagoda::kernels::internal {

/// Largest m for which SkinnyGemm is used instead of BLAS sgemm.
inline constexpr int64_t kSkinnyGemmMaxRows = 8;

/// C's rows are ldc (>= n) floats apart.
void SkinnyGemm(const float* a, const float* b, float* c, int64_t m, int64_t n, int64_t k,
                float alpha, float beta, int64_t ldc);

}  // namespace pagoda::kernels::internal
