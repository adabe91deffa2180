#include "worker/cpu_weight_placement.h"

#include <cstddef>
#include <cstring>
#include <memory>
#include <vector>

#include "common/status_macros.h"
#include "kernels/gemm.h"
#include "kernels/weight_buffer.h"

namespace pagoda {
namespace {

constexpr int64_t kAlignment = 64;  // each tensor's start in the buffer: a cache line

int64_t Aligned(int64_t bytes) { return (bytes + kAlignment - 1) / kAlignment * kAlignment; }

// A weight the GEMMs read, and what becomes of it.
struct Item {
  Tensor* tensor;       // moved into the buffer (replaced by a view of it) when `move`
  const void** packed;  // receives the packed form when packed_bytes > 0
  int64_t packed_bytes = 0;
  bool move = false;
  int64_t offset = 0;  // in the buffer: the packed form, or the moved tensor
};

}  // namespace

absl::Status PlaceWeightsForCpu(ModelWeights& weights) {
  // Moving a weight pays only for the huge pages.
  const bool huge_pages = kernels::WeightBuffersUseHugePages();
  std::vector<Item> items;
  const auto add = [&](Tensor* tensor, const void** packed) {
    if (tensor->empty() || tensor->device() != Device::kCpu || tensor->shape().size() != 2) {
      return;
    }
    Item item{.tensor = tensor, .packed = packed};
    item.packed_bytes =
        kernels::PackedGemmWeightBytes(tensor->dtype(), tensor->rows(), tensor->cols());
    item.move = item.packed_bytes == 0 && huge_pages;
    if (item.packed_bytes > 0 || item.move) items.push_back(item);
  };
  const auto add_linear = [&](LinearWeight& w) {
    w.packed.assign(w.parts.size(), nullptr);
    for (size_t i = 0; i < w.parts.size(); ++i) add(&w.parts[i], &w.packed[i]);
  };
  for (LayerWeights& layer : weights.layers) {
    for (LinearWeight* w : {&layer.qkv_proj, &layer.o_proj, &layer.gate_up_proj, &layer.down_proj,
                            &layer.experts.router}) {
      add_linear(*w);
    }
    for (LinearWeight& w : layer.experts.gate_up_proj) add_linear(w);
    for (LinearWeight& w : layer.experts.down_proj) add_linear(w);
  }
  weights.packed_lm_head = nullptr;
  weights.packed_bytes = 0;
  add(weights.lm_head.empty() ? &weights.embed_tokens : &weights.lm_head, &weights.packed_lm_head);
  if (items.empty()) return absl::OkStatus();

  int64_t total = 0;
  for (Item& item : items) {
    item.offset = total;
    total += Aligned(item.packed_bytes > 0 ? item.packed_bytes : item.tensor->num_bytes());
  }
  ASSIGN_OR_RETURN(std::shared_ptr<std::byte> buffer, kernels::AllocateWeightBuffer(total));
  for (const Item& item : items) {
    std::byte* at = buffer.get() + item.offset;
    Tensor& t = *item.tensor;
    if (item.packed_bytes > 0) {
      RETURN_IF_ERROR(kernels::PackGemmWeights(t.data(), t.dtype(), t.rows(), t.cols(), at));
      *item.packed = at;
      weights.packed_bytes += item.packed_bytes;
    } else {
      std::memcpy(at, t.data(), static_cast<size_t>(t.num_bytes()));
      ASSIGN_OR_RETURN(t, Tensor::View(t.dtype(), t.shape(), at, buffer));
    }
  }
  weights.cpu_buffer = std::move(buffer);
  return absl::OkStatus();
}

}  // namespace pagoda
