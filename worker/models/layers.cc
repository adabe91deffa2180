#include "worker/models/layers.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/status_macros.h"
#include "kernels/elementwise.h"
#include "kernels/gemm.h"
#include "kernels/kv_cache_write.h"
#include "kernels/paged_attention.h"
#include "kernels/rms_norm.h"

namespace pagoda {

absl::Status Linear(const float* in, int64_t rows, const LinearWeight& w, const Tensor& bias,
                    float* out, Device device) {
  const int64_t n = w.out_features();
  float beta = 0.0f;
  if (!bias.empty()) {
    // The bias in every row, which the parts' products then accumulate onto.
    RETURN_IF_ERROR(kernels::BroadcastRows(
        {.row = bias.data_as<float>(), .output = out, .rows = rows, .cols = n, .device = device}));
    beta = 1.0f;
  }
  // The parts (a GGUF's q, k and v, or gate and up) in one call: the activations are rounded
  // once and the threads forked once for all of them (kernels/gemm.h GemmParts).
  std::vector<kernels::GemmParams> parts;
  parts.reserve(w.parts.size());
  int64_t column = 0;
  for (size_t i = 0; i < w.parts.size(); ++i) {
    const Tensor& part = w.parts[i];
    parts.push_back({.a = in,
                     .b = part.data(),
                     .b_dtype = part.dtype(),
                     .b_packed = i < w.packed.size() ? w.packed[i] : nullptr,
                     .c = out + column,
                     .m = rows,
                     .n = part.rows(),
                     .k = part.cols(),
                     .beta = beta,
                     .ldc = n,
                     .device = device});
    column += part.rows();
  }
  return kernels::GemmParts(parts);
}

absl::Status HeadRmsNorm(float* x, int64_t num_tokens, int64_t stride, int64_t num_heads,
                         int64_t head_dim, const Tensor& weight, float eps, Device device) {
  // Each token's heads are contiguous, the tokens `stride` apart: rows in groups of num_heads.
  return kernels::RmsNorm({.input = x,
                           .weight = weight.data_as<float>(),
                           .output = x,
                           .num_tokens = num_tokens * num_heads,
                           .hidden_size = head_dim,
                           .rows_per_group = num_heads,
                           .group_stride = stride,
                           .eps = eps,
                           .device = device});
}

absl::Status PagedAttentionLayer(const ForwardContext& context, int64_t layer,
                                 const AttentionInputs& in, float* out) {
  const ForwardBatch& batch = context.batch;
  KvCache& cache = *context.kv_cache;
  const KvCacheShape& shape = cache.shape();
  // The layer's KV cache group: its slot in the cache, its slots of the tokens, its tables.
  int64_t slot = layer;
  KvGroupBatch group = {.slot_mapping = batch.slot_mapping, .block_tables = batch.block_tables};
  if (!batch.layer_group.empty()) {
    slot = batch.layer_slot[layer];
    const int32_t g = batch.layer_group[layer];
    if (g > 0) group = batch.more_groups[g - 1];
  }
  // The step's slots and block tables were checked once (ModelRunner::ValidateBatch or the
  // StepRunner's plan check): the kernels skip their index scans, which would repeat per layer.
  RETURN_IF_ERROR(kernels::WriteKvCache({.key = in.k,
                                         .value = in.v,
                                         .key_cache = cache.key(slot),
                                         .value_cache = cache.value(slot),
                                         .cache_dtype = shape.dtype,
                                         .slot_mapping = group.slot_mapping,
                                         .num_tokens = batch.num_tokens,
                                         .num_kv_heads = shape.num_kv_heads,
                                         .head_dim = shape.head_dim,
                                         .block_size = shape.block_size,
                                         .num_blocks = shape.num_blocks,
                                         .key_stride = in.stride,
                                         .value_stride = in.stride,
                                         .keys_transposed = shape.keys_transposed,
                                         .slots_checked = true,
                                         .device = context.device}));
  return kernels::PagedAttention(
      {.out = out,
       .q = in.q,
       .key_cache = cache.key(slot),
       .value_cache = cache.value(slot),
       .cache_dtype = shape.dtype,
       .block_tables = group.block_tables,
       .query_start_loc = batch.query_start_loc,
       .seq_lens = batch.seq_lens,
       .num_seqs = batch.num_seqs,
       .num_tokens = batch.num_tokens,
       .num_heads = in.num_heads,
       .num_kv_heads = shape.num_kv_heads,
       .head_dim = shape.head_dim,
       .block_size = shape.block_size,
       .num_blocks = shape.num_blocks,
       .max_blocks_per_seq = batch.max_blocks_per_seq,
       .q_stride = in.stride,
       .keys_transposed = shape.keys_transposed,
       .max_query_len = batch.max_query_len,
       .scale = in.scale > 0.0f
                    ? in.scale
                    : static_cast<float>(1.0 / std::sqrt(static_cast<double>(in.head_dim))),
       .sliding_window = in.sliding_window,
       .logit_softcap = in.logit_softcap,
       .block_ids_checked = true,
       .device = context.device});
}

}  // namespace pagoda
