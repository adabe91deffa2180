#include "kernels/cpu/internal/integer_gemm.h"

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/cpu/internal/packed_q8_0.h"
#include "kernels/cpu/internal/q8_activations.h"
#include "kernels/cpu/internal/quantized_dot.h"
#include "kernels/cpu/internal/vec_math.h"

namespace pagoda::kernels::internal {

bool HasIntegerDot(DType dtype) { return QuantizedDotFor(dtype, CpuIsa::kScalar) != nullptr; }

void IntegerGemm(const GemmParams& p, CpuIsa isa) {
  const QuantizedGemmFn gemm = QuantizedGemmFor(p.b_dtype, isa);
  const DTypeTraits& t = Traits(p.b_dtype);
  const int64_t num_blocks = p.k / kQ8BlockElements;
  const int64_t a_stride = Q8RowStride(num_blocks);
  const int64_t s_stride = ScaledSumsStride(num_blocks);
  // The calling thread's buffers, grown to the largest m * k it has seen and then reused: no
  // allocation per call in the steady state.
  thread_local std::vector<Q8Block> quantized;
  thread_local std::vector<float> scaled_sums;
  if (quantized.size() < static_cast<size_t>(p.m * a_stride)) {
    quantized.resize(static_cast<size_t>(p.m * a_stride));
  }
  if (scaled_sums.size() < static_cast<size_t>(p.m * s_stride)) {
    scaled_sums.resize(static_cast<size_t>(p.m * s_stride));
  }
  for (int64_t i = 0; i < p.m; ++i) {
    Q8Block* row = quantized.data() + i * a_stride;
    QuantizeRowQ8(p.a + i * p.k, row, num_blocks);
    for (int64_t b = num_blocks; b < a_stride; ++b) row[b] = Q8Block{};
    float* sums = scaled_sums.data() + i * s_stride;
    for (int64_t b = 0; b < num_blocks; ++b) sums[b] = row[b].d * static_cast<float>(row[b].sum);
    for (int64_t b = num_blocks; b < s_stride; ++b) sums[b] = 0.0f;
  }
  const QuantizedGemmArgs args{.w = static_cast<const uint8_t*>(p.b),
                               .packed = static_cast<const uint8_t*>(p.b_packed),
                               .row_bytes = p.k / t.block_elements * t.block_bytes,
                               .num_blocks = num_blocks,
                               .a = quantized.data(),
                               .scaled_sums = scaled_sums.data(),
                               .m = p.m,
                               .c = p.c,
                               .ldc = p.row_stride(),
                               .alpha = p.alpha,
                               .beta = p.beta};
  // Which thread computes an element changes nothing in it (quantized_dot.h), so the split may
  // follow the work.
  const bool parallel = p.n * p.k * p.m >= kParallelMinElements * 4 && omp_get_max_threads() > 1;
#pragma omp parallel if (parallel)
  {
    // Contiguous ranges so that each thread streams its own part of W, in whole groups of 16 rows
    // (a packed Q8_0 group, packed_q8_0.h).
    const int64_t threads = omp_get_num_threads();
    const int64_t id = omp_get_thread_num();
    const int64_t groups = (p.n + kPackedQ8_0Rows - 1) / kPackedQ8_0Rows;
    gemm(args, std::min(p.n, groups * id / threads * kPackedQ8_0Rows),
         std::min(p.n, groups * (id + 1) / threads * kPackedQ8_0Rows));
  }
}

}  // namespace pagoda::kernels::internal
