// Embedding lookup on the device: one block per token copies (and widens) its table row.
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/embedding.h"
#include "kernels/cuda/internal/cuda_status.h"
#include "kernels/cuda/internal/device_math.cuh"
#include "kernels/cuda/stream.h"

namespace pagoda::kernels::cuda {
namespace {

constexpr int kThreads = 256;

struct F32Row {
  __device__ static float Load(const void* row, int64_t i) {
    return static_cast<const float*>(row)[i];
  }
};
struct F16Row {
  __device__ static float Load(const void* row, int64_t i) {
    return internal::HalfToFloat(static_cast<const uint16_t*>(row)[i]);
  }
};
struct Bf16Row {
  __device__ static float Load(const void* row, int64_t i) {
    return internal::Bf16ToFloat(static_cast<const uint16_t*>(row)[i]);
  }
};

// Token blockIdx.x. An id outside [0, vocab_size) (the caller checks them) leaves its output row
// as it was rather than read outside the table.
template <typename Row>
__global__ void EmbeddingKernel(const int32_t* __restrict__ token_ids,
                                const char* __restrict__ table, float* __restrict__ output,
                                int64_t vocab_size, int64_t hidden_size, int64_t row_bytes) {
  const int64_t t = blockIdx.x;
  const int32_t id = token_ids[t];
  if (id < 0 || id >= vocab_size) return;
  const void* row = table + static_cast<int64_t>(id) * row_bytes;
  float* out = output + t * hidden_size;
  for (int64_t i = threadIdx.x; i < hidden_size; i += blockDim.x) out[i] = Row::Load(row, i);
}

}  // namespace

absl::Status Embedding(const EmbeddingParams& p) {
  const auto* table = static_cast<const char*>(p.table);
  const unsigned int blocks = static_cast<unsigned int>(p.num_tokens);
  switch (p.table_dtype) {
    case DType::kF32:
      EmbeddingKernel<F32Row><<<blocks, kThreads, 0, CurrentStream()>>>(
          p.token_ids, table, p.output, p.vocab_size, p.hidden_size, p.hidden_size * 4);
      break;
    case DType::kF16:
      EmbeddingKernel<F16Row><<<blocks, kThreads, 0, CurrentStream()>>>(
          p.token_ids, table, p.output, p.vocab_size, p.hidden_size, p.hidden_size * 2);
      break;
    case DType::kBF16:
      EmbeddingKernel<Bf16Row><<<blocks, kThreads, 0, CurrentStream()>>>(
          p.token_ids, table, p.output, p.vocab_size, p.hidden_size, p.hidden_size * 2);
      break;
    default:  // Validate() admits only the three above on CUDA
      return absl::UnimplementedError("embedding: CUDA table dtype");
  }
  return internal::LaunchStatus("embedding");
}

}  // namespace pagoda::kernels::cuda
