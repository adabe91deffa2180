#include "kernels/cpu/dequantize.h"

#include <algorithm>

#include "kernels/cpu/internal/block_formats.h"
#include "kernels/cpu/internal/vec_math.h"

namespace pagoda::kernels::cpu {
namespace {

// Splits num_blocks into runs of about kParallelMinElements elements and converts them in
// parallel when there are several (whole tensors at load time); a single row stays on the
// calling thread.
template <typename Convert>
void ForBlockRuns(DType dtype, int64_t num_elements, Convert convert) {
  const DTypeTraits& t = Traits(dtype);
  const int64_t num_blocks = num_elements / t.block_elements;
  const int64_t run = std::max<int64_t>(1, internal::kParallelMinElements / t.block_elements);
  const int64_t runs = (num_blocks + run - 1) / run;
  if (runs <= 1) {  // a row (an embedding lookup): no parallel region at all
    convert(0, num_blocks);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < runs; ++r) {
    const int64_t first = r * run;
    convert(first, std::min(run, num_blocks - first));
  }
}

}  // namespace

void Dequantize(const DequantizeParams& p) {
  const internal::ToFloatFn to_float = internal::FormatOf(p.dtype).to_float;
  const DTypeTraits& t = Traits(p.dtype);
  const auto* src = static_cast<const uint8_t*>(p.src);
  ForBlockRuns(p.dtype, p.num_elements, [&](int64_t first, int64_t count) {
    to_float(src + first * t.block_bytes, p.dst + first * t.block_elements, count);
  });
}

void Quantize(const QuantizeParams& p) {
  const internal::FromFloatFn from_float = internal::FormatOf(p.dtype).from_float;
  const DTypeTraits& t = Traits(p.dtype);
  auto* dst = static_cast<uint8_t*>(p.dst);
  ForBlockRuns(p.dtype, p.num_elements, [&](int64_t first, int64_t count) {
    from_float(p.src + first * t.block_elements, dst + first * t.block_bytes, count);
  });
}

}  // namespace pagoda::kernels::cpu
