#include "worker/kv_cache.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/block_copy.h"
#include "kernels/cuda/device_memory.h"

namespace pagoda {

bool IsKvCacheDType(DType dtype) { return dtype == DType::kF32 || dtype == DType::kBF16; }

absl::StatusOr<KvCache> KvCache::Create(const KvCacheShape& shape) {
  if (shape.num_layers <= 0 || shape.num_blocks <= 0 || shape.block_size <= 0 ||
      shape.num_kv_heads <= 0 || shape.head_dim <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV cache shape must be positive: layers=", shape.num_layers,
                     " blocks=", shape.num_blocks, " block_size=", shape.block_size,
                     " kv_heads=", shape.num_kv_heads, " head_dim=", shape.head_dim));
  }
  if (!IsKvCacheDType(shape.dtype)) {
    return absl::InvalidArgumentError(absl::StrCat("the KV cache stores float32 or bfloat16, not ",
                                                   std::string(DTypeName(shape.dtype))));
  }
  KvCache cache(shape);
  for (int64_t layer = 0; layer < shape.num_layers; ++layer) {
    for (std::vector<Tensor>* tensors : {&cache.keys_, &cache.values_}) {
      absl::StatusOr<Tensor> t = Tensor::Zeros(
          shape.dtype, {shape.num_blocks, shape.num_kv_heads, shape.block_size, shape.head_dim},
          shape.device);
      if (absl::IsFailedPrecondition(t.status())) return t.status();  // no CUDA device
      if (!t.ok()) {
        return absl::ResourceExhaustedError(
            absl::StrCat("cannot allocate the KV cache: ", shape.num_blocks, " blocks of ",
                         shape.bytes_per_block(), " bytes (",
                         shape.num_blocks * shape.bytes_per_block() >> 20, " MiB) on the ",
                         std::string(DeviceName(shape.device)), "; lower the number of blocks"));
      }
      tensors->push_back(*std::move(t));
    }
  }
  return cache;
}

namespace {

// The kernel's view of `src` -> `dst`: every layer's keys, then every layer's values.
absl::Status CopyBetween(const KvCache& src, KvCache& dst,
                         absl::Span<const std::pair<int32_t, int32_t>> src_dst) {
  const int64_t num_layers = src.shape().num_layers;
  std::vector<const void*> from(static_cast<size_t>(2 * num_layers));
  std::vector<void*> to(static_cast<size_t>(2 * num_layers));
  for (int64_t layer = 0; layer < num_layers; ++layer) {
    from[layer] = src.key(layer);
    from[num_layers + layer] = src.value(layer);
    to[layer] = dst.key(layer);
    to[num_layers + layer] = dst.value(layer);
  }
  std::vector<int32_t> pairs;
  pairs.reserve(2 * src_dst.size());
  for (const auto& [s, d] : src_dst) pairs.insert(pairs.end(), {s, d});
  // Either side on the device: the device copies (cudaMemcpyAsync reads and writes host memory
  // too), then waits, so that a swapped-out block is on the host when this returns.
  const bool on_device = src.shape().device == Device::kCuda || dst.shape().device == Device::kCuda;
  RETURN_IF_ERROR(kernels::CopyBlocks({.src = from.data(),
                                       .dst = to.data(),
                                       .num_tensors = 2 * num_layers,
                                       .block_bytes = src.shape().layer_bytes_per_block(),
                                       .num_src_blocks = src.shape().num_blocks,
                                       .num_dst_blocks = dst.shape().num_blocks,
                                       .block_pairs = pairs.data(),
                                       .num_pairs = static_cast<int64_t>(src_dst.size()),
                                       .device = on_device ? Device::kCuda : Device::kCpu}));
  if (on_device && !src_dst.empty()) return kernels::cuda::Synchronize();
  return absl::OkStatus();
}

}  // namespace

absl::Status KvCache::CopyBlocks(absl::Span<const std::pair<int32_t, int32_t>> src_dst) {
  return CopyBetween(*this, *this, src_dst);
}

absl::Status KvCache::CopyBlocksAcross(const KvCache& src, KvCache& dst,
                                       absl::Span<const std::pair<int32_t, int32_t>> src_dst) {
  const KvCacheShape& a = src.shape();
  const KvCacheShape& b = dst.shape();
  if (a.num_layers != b.num_layers || a.block_size != b.block_size ||
      a.num_kv_heads != b.num_kv_heads || a.head_dim != b.head_dim || a.dtype != b.dtype ||
      a.keys_transposed != b.keys_transposed) {
    return absl::InvalidArgumentError(
        "block swap between KV caches of different layers, block shape, dtype or key layout");
  }
  return CopyBetween(src, dst, src_dst);
}

}  // namespace pagoda
