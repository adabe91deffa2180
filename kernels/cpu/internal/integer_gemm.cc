#include "kernels/cpu/internal/integer_gemm.h"

#include <omp.h>

#include <algorithm>
#include <vector>

#include "kernels/cpu/internal/dequantizing_gemm.h"
#include "kernels/cpu/internal/q8_activations.h"
#include "kernels/cpu/internal/quantized_dot.h"
#include "kernels/cpu/internal/vec_math.h"

namespace pagoda::kernels::internal {

bool HasIntegerDot(DType dtype) { return QuantizedDotFor(dtype, CpuIsa::kScalar) != nullptr; }

void IntegerGemm(const GemmParams& p, CpuIsa isa) {
  if (p.m > kIntegerGemmMaxRows) {
    // The same 8-bit activation values, multiplied in fp32 by dequantized panels and sgemm.
    thread_local std::vector<float> rounded;
    if (rounded.size() < static_cast<size_t>(p.m * p.k)) {
      rounded.resize(static_cast<size_t>(p.m * p.k));
    }
    RoundRowToQ8(p.a, rounded.data(), p.m * p.k / kQ8BlockElements);
    GemmParams q = p;
    q.a = rounded.data();
    DequantizingGemm(q);
    return;
  }
  const QuantizedDotFn dot = QuantizedDotFor(p.b_dtype, isa);
  const DTypeTraits& t = Traits(p.b_dtype);
  const int64_t num_blocks = p.k / kQ8BlockElements;
  const int64_t row_bytes = p.k / t.block_elements * t.block_bytes;
  // The calling thread's buffer, grown to the largest m * k it has seen and then reused: no
  // allocation per call in the steady state.
  thread_local std::vector<Q8Block> quantized;
  if (quantized.size() < static_cast<size_t>(p.m * num_blocks)) {
    quantized.resize(static_cast<size_t>(p.m * num_blocks));
  }
  for (int64_t i = 0; i < p.m; ++i) {
    QuantizeRowQ8(p.a + i * p.k, quantized.data() + i * num_blocks, num_blocks);
  }
  const Q8Block* a = quantized.data();
  const auto* w = static_cast<const uint8_t*>(p.b);
  const int64_t ldc = p.row_stride();
  const bool parallel = p.n * p.k * p.m >= kParallelMinElements * 4 && omp_get_max_threads() > 1;
#pragma omp parallel if (parallel)
  {
    // Contiguous ranges so that each thread streams its own part of W.
    const int64_t threads = omp_get_num_threads();
    const int64_t id = omp_get_thread_num();
    const int64_t begin = p.n * id / threads;
    const int64_t end = p.n * (id + 1) / threads;
    for (int64_t j = begin; j < end; ++j) {
      const uint8_t* row = w + j * row_bytes;
      for (int64_t i = 0; i < p.m; ++i) {
        const float acc = dot(row, a + i * num_blocks, num_blocks);
        float* out = p.c + i * ldc + j;
        *out = p.beta == 0.0f ? p.alpha * acc : p.alpha * acc + p.beta * *out;
      }
    }
  }
}

}  // namespace pagoda::kernels::internal
