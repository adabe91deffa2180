#include "kernels/cpu/internal/integer_gemm.h"

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/cpu/internal/packed_gemm.h"
#include "kernels/cpu/internal/q8_activations.h"
#include "kernels/cpu/internal/quantized_dot.h"
#include "kernels/cpu/internal/vec_math.h"

namespace pagoda::kernels::internal {
namespace {

// The fewest of A's Q8 blocks that the threads of the GEMM's parallel region round between them
// (IntegerGemmParts); fewer are rounded by the calling thread before the region.
constexpr int64_t kMinSplitRoundingBlocks = 64;

}  // namespace

bool HasIntegerDot(DType dtype) { return QuantizedDotFor(dtype, CpuIsa::kScalar) != nullptr; }

void IntegerGemm(const GemmParams& p, CpuIsa isa) { IntegerGemmParts({&p, 1}, isa); }

void IntegerGemmParts(absl::Span<const GemmParams> parts, CpuIsa isa) {
  // Every part shares the activations: a, m and k are the first part's.
  const GemmParams& p = parts[0];
  const int64_t num_blocks = p.k / kQ8BlockElements;
  const int64_t a_stride = Q8RowStride(num_blocks);
  const int64_t s_stride = ScaledSumsStride(num_blocks);
  // The calling thread's buffers, grown to the largest m * k it has seen and then reused: no
  // allocation per call in the steady state. The threads of the parallel region below read them
  // (and may each fill a share of them) through the pointers taken here, until the region ends.
  thread_local std::vector<Q8Block> quantized;
  thread_local std::vector<float> scaled_sums;
  if (quantized.size() < static_cast<size_t>(p.m * a_stride)) {
    quantized.resize(static_cast<size_t>(p.m * a_stride));
  }
  if (scaled_sums.size() < static_cast<size_t>(p.m * s_stride)) {
    scaled_sums.resize(static_cast<size_t>(p.m * s_stride));
  }
  Q8Block* const q8 = quantized.data();
  float* const q8_sums = scaled_sums.data();
  struct Part {
    QuantizedGemmFn gemm;
    QuantizedGemmArgs args;
    int64_t first_row;  // of the parts' rows taken back to back
  };
  thread_local std::vector<Part> runs;  // the calling thread's, as the buffers above
  runs.clear();
  int64_t total_rows = 0;
  for (const GemmParams& part : parts) {
    const DTypeTraits& t = Traits(part.b_dtype);
    runs.push_back({.gemm = QuantizedGemmFor(part.b_dtype, isa),
                    .args = {.w = static_cast<const uint8_t*>(part.b),
                             .packed = static_cast<const uint8_t*>(part.b_packed),
                             .row_bytes = part.k / t.block_elements * t.block_bytes,
                             .num_blocks = num_blocks,
                             .a = q8,
                             .scaled_sums = q8_sums,
                             .m = part.m,
                             .c = part.c,
                             .ldc = part.row_stride(),
                             .alpha = part.alpha,
                             .beta = part.beta},
                    .first_row = total_rows});
    total_rows += part.n;
  }
  // Which thread computes an element changes nothing in it (quantized_dot.h), so the split may
  // follow the work.
  const bool parallel =
      total_rows * p.k * p.m >= kParallelMinElements * 4 && omp_get_max_threads() > 1;
  const Part* const run = runs.data();  // not `runs`: each thread has its own thread_local
  const int64_t num_runs = static_cast<int64_t>(runs.size());
  // Blocks [first, last) of A's m * num_blocks, row after row, rounded into the buffers. Each
  // block is rounded on its own (QuantizeRowQ8), so how the blocks are split changes no value;
  // the call that rounds a row's last block writes the row's padding.
  const int64_t total_blocks = p.m * num_blocks;
  const auto round_blocks = [q8, q8_sums, num_blocks, a_stride, s_stride, isa, a = p.a, k = p.k](
                                int64_t first, int64_t last) {
    for (int64_t x = first; x < last;) {
      const int64_t i = x / num_blocks;
      const int64_t b_begin = x % num_blocks;
      const int64_t b_end = std::min(num_blocks, b_begin + last - x);
      Q8Block* row = q8 + i * a_stride;
      float* sums = q8_sums + i * s_stride;
      QuantizeRowQ8(a + i * k + b_begin * kQ8BlockElements, row + b_begin, b_end - b_begin,
                    sums + b_begin, isa);
      if (b_end == num_blocks) {
        for (int64_t b = num_blocks; b < a_stride; ++b) row[b] = Q8Block{};
        for (int64_t b = num_blocks; b < s_stride; ++b) sums[b] = 0.0f;
      }
      x += b_end - b_begin;
    }
  };
  // Rounded inside the parallel region, A's rounding is off the serial path but costs a barrier:
  // worth it from a few rows on (a speculative verification's, a prefill's), not for a decode
  // step's single row (18 to 48 blocks on SmolLM2), which the calling thread rounds first.
  const bool split_rounding = parallel && total_blocks >= kMinSplitRoundingBlocks;
  if (!split_rounding) round_blocks(0, total_blocks);
#pragma omp parallel if (parallel)
  {
    const int64_t threads = omp_get_num_threads();
    const int64_t id = omp_get_thread_num();
    if (split_rounding) {
      // A rounded to Q8 blocks in the region: each thread takes a contiguous share of A's
      // m * num_blocks blocks (whole rows when m is large, parts of a row when it is small).
      round_blocks(total_blocks * id / threads, total_blocks * (id + 1) / threads);
      // Every thread's GEMM reads every row of A.
#pragma omp barrier
    }
    // Contiguous ranges of the parts' rows, so that each thread streams its own part of W; within
    // a part, cut at whole groups of 16 rows (a packed group, packed_gemm.h), the same cut
    // for the thread that ends there and the one that starts there.
    const int64_t begin = total_rows * id / threads;
    const int64_t end = total_rows * (id + 1) / threads;
    for (int64_t i = 0; i < num_runs; ++i) {
      const int64_t n = parts[i].n;
      const auto cut = [&](int64_t boundary) {
        const int64_t local = std::clamp(boundary - run[i].first_row, int64_t{0}, n);
        return std::min(n, (local + kPackedGroupRows - 1) / kPackedGroupRows * kPackedGroupRows);
      };
      const int64_t lo = cut(begin);
      const int64_t hi = cut(end);
      if (lo < hi) run[i].gemm(run[i].args, lo, hi);
    }
  }
}

}  // namespace pagoda::kernels::internal
