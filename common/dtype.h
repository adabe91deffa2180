// Element types of weights, activations and KV entries: the 16- and 32-bit floats and the GGUF
// block-quantized formats real checkpoints are made of. One row per type holds its size facts
// (elements per block, bytes per block, the GGML type id GGUF files store); the kernels keep
// their own per-type table of conversion and dot-product functions indexed by DType.
//
//   const DTypeTraits& t = Traits(DType::kQ4_K);             // 256 elements in 144 bytes
//   ASSIGN_OR_RETURN(int64_t bytes, RowBytes(DType::kQ4_K, 4096));  // 2304
//   std::optional<DType> d = DTypeFromGgmlType(12);           // kQ4_K
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "absl/status/statusor.h"

namespace pagoda {

enum class DType : uint8_t {
  kF32,
  kF16,
  kBF16,
  kQ8_0,
  kQ4_0,
  kQ4_1,
  kQ5_0,
  kQ5_1,
  kQ2_K,
  kQ3_K,
  kQ4_K,
  kQ5_K,
  kQ6_K,
};
inline constexpr int kNumDTypes = 13;

struct DTypeTraits {
  DType dtype;
  std::string_view name;       // user-facing: "float32", "bfloat16", "q4_K", ... (--dtype, logs)
  std::string_view ggml_name;  // GGML's spelling: "f32", "bf16", "q4_K", ...
  uint32_t ggml_type;          // the type id in GGUF tensor infos
  int64_t block_elements;      // elements per block (1 for the float types)
  int64_t block_bytes;         // bytes per block
  bool quantized;              // a block format (dequantized inside the kernels)
};

/// The row of `dtype`.
const DTypeTraits& Traits(DType dtype);

/// "float32", "float16", "bfloat16" (Hugging Face's torch_dtype spelling), "q8_0", "q4_K", ...
std::string_view DTypeName(DType dtype);

/// The DType of a GGML type id, or nullopt for ids Pagoda does not support.
std::optional<DType> DTypeFromGgmlType(uint32_t ggml_type);

/// GGML's name of any type id it defines ("iq2_xxs", "q8_1", ...), for error messages about
/// types Pagoda does not support; "unknown" for ids GGML does not define either.
std::string_view GgmlTypeName(uint32_t ggml_type);

/// Bytes of `num_elements` consecutive elements of `dtype`: an InvalidArgument error when the
/// count is negative, not a whole number of blocks, or the size overflows int64.
absl::StatusOr<int64_t> RowBytes(DType dtype, int64_t num_elements);

}  // namespace pagoda
