// Conversions between fp32 and the stored DTypes: Dequantize turns whole blocks of any DType
// (F32, F16, BF16, the GGUF block formats) into fp32; Quantize turns fp32 into F32, F16, BF16 or
// Q8_0 (what `--dtype` and quantized activations need). Results equal the `gguf` package's
// gguf.quants.dequantize / quantize bit for bit (F16 rounds to nearest even like numpy's
// astype(float16); BF16 rounds to nearest even like PyTorch and ggml, and keeps NaN a quiet NaN
// with its sign, as ggml does).
//
//   RETURN_IF_ERROR(kernels::Dequantize({.dtype = DType::kQ4_K, .src = row_bytes,
//                                        .dst = row_floats, .num_elements = 4096}));
//   RETURN_IF_ERROR(kernels::Quantize({.dtype = DType::kBF16, .src = weights_f32,
//                                      .dst = weights_bf16, .num_elements = n}));
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "common/dtype.h"

namespace pagoda::kernels {

struct DequantizeParams {
  DType dtype = DType::kF32;  // the stored type of src
  const void* src = nullptr;  // [num_elements / block_elements] blocks of dtype
  float* dst = nullptr;       // [num_elements] fp32
  int64_t num_elements = 0;   // a whole number of dtype's blocks

  absl::Status Validate() const;
};

struct QuantizeParams {
  DType dtype = DType::kF32;   // the target type: one for which CanQuantizeTo() holds
  const float* src = nullptr;  // [num_elements] fp32; Q8_0 needs finite values
  void* dst = nullptr;         // [num_elements / block_elements] blocks of dtype
  int64_t num_elements = 0;    // a whole number of dtype's blocks

  absl::Status Validate() const;
};

/// Whether Quantize converts fp32 into `dtype` (F32, F16, BF16, Q8_0: the K-quants and the 4/5-bit
/// formats need an importance-weighted search that belongs in an offline tool).
bool CanQuantizeTo(DType dtype);

/// dst = fp32 values of src. Returns InvalidArgument for a bad params struct.
absl::Status Dequantize(const DequantizeParams& params);

/// dst = src stored as dtype. Returns InvalidArgument for a bad params struct.
absl::Status Quantize(const QuantizeParams& params);

}  // namespace pagoda::kernels
