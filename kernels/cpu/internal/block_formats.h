// The CPU's row of functions for each DType, in the spirit of ggml's type traits: how whole
// blocks of the type become fp32 and, where Pagoda writes the type, how fp32 becomes blocks.
// Size facts (block_elements, block_bytes) live in common/dtype.h; a kernel looks its row up once
// per call and never branches on the dtype itself. Adding a format is adding a row.
//
// The conversions are bit-exact to the gguf package's numpy reference: this file's .cc is built
// without FMA contraction so that d * q - m rounds twice, as numpy does.
//
//   const BlockFormat& f = FormatOf(DType::kQ4_K);
//   f.to_float(row_bytes, row_floats, /*num_blocks=*/k / 256);
#pragma once

#include <cstdint>

#include "common/dtype.h"

namespace pagoda::kernels::internal {

/// num_blocks whole blocks at src -> num_blocks * block_elements floats at dst.
using ToFloatFn = void (*)(const void* src, float* dst, int64_t num_blocks);
/// num_blocks * block_elements floats at src -> num_blocks whole blocks at dst.
using FromFloatFn = void (*)(const float* src, void* dst, int64_t num_blocks);

struct BlockFormat {
  ToFloatFn to_float;
  FromFloatFn from_float;  // null where Pagoda does not write the type (see CanQuantizeTo)
};

/// The row of `dtype`.
const BlockFormat& FormatOf(DType dtype);

}  // namespace pagoda::kernels::internal
