// Building blocks of model definitions, written once in terms of kernel ops: a linear layer over
// a (possibly multi-part, any-DType) LinearWeight, a per-head RMSNorm, and the paged attention of
// one layer (write the new keys and values into the KV cache, then attend over each sequence's
// context).
//
//   RETURN_IF_ERROR(Linear(x, num_tokens, w.qkv_proj, w.qkv_bias, qkv));
//   RETURN_IF_ERROR(PagedAttentionLayer(context, layer, {.q = q, .k = k, .v = v, .stride = width,
//                                                        .num_heads = 4, .head_dim = 64}, out));
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/tensor.h"
#include "worker/model_weights.h"
#include "worker/models/model.h"

namespace pagoda {

/// out [rows, w.out_features()] = in [rows, w.in_features()] @ W^T (+ bias, fp32
/// [out_features], when not empty). Each part of W writes its own output columns. in, out, W and
/// the bias live on `device`.
absl::Status Linear(const float* in, int64_t rows, const LinearWeight& w, const Tensor& bias,
                    float* out, Device device = Device::kCpu);

/// x [num_tokens, num_heads, head_dim] (rows `stride` floats apart, the heads of a row
/// contiguous) <- RMSNorm of every head with `weight` (fp32 [head_dim]), in place: Qwen3's q/k
/// norm.
absl::Status HeadRmsNorm(float* x, int64_t num_tokens, int64_t stride, int64_t num_heads,
                         int64_t head_dim, const Tensor& weight, float eps,
                         Device device = Device::kCpu);

/// The queries, keys and values of the batch's tokens, rows `stride` floats apart (they usually
/// sit side by side in one fused qkv activation).
struct AttentionInputs {
  const float* q = nullptr;  // [num_tokens, num_heads, head_dim]
  const float* k = nullptr;  // [num_tokens, num_kv_heads, head_dim] (the cache's KV heads)
  const float* v = nullptr;  // [num_tokens, num_kv_heads, head_dim]
  int64_t stride = 0;
  int64_t num_heads = 0;  // this rank's query heads
  int64_t head_dim = 0;
  int64_t sliding_window = 0;  // > 0: each query sees its last sliding_window positions only
  float logit_softcap = 0.0f;  // > 0: scores soft-capped to (-cap, cap) (Gemma 2)
  float scale = 0.0f;          // 0: 1 / sqrt(head_dim)
};

/// Writes k and v into layer `layer` of the context's KV cache at the batch's slots, then
/// out [num_tokens, num_heads * head_dim] <- causal softmax(q k^T * scale) v over each sequence's
/// cached context (its window's part of it, for a sliding layer). The batch's indices were checked
/// once for the step. Everything is on context.device.
absl::Status PagedAttentionLayer(const ForwardContext& context, int64_t layer,
                                 const AttentionInputs& inputs, float* out);

}  // namespace pagoda
