// KvCacheGroups: how a model's layers share the paged KV cache when their attention windows
// differ (docs/architecture.md, "KV cache groups"). Layers of one window (0: full attention) form
// a kind; K = the layer count of the smallest kind, and each kind's layers, in layer order, are cut
// into groups of K (the last one may be shorter). Every group has its own block tables (the
// engine's KVCacheManager groups); all groups share one pool of blocks, and a block holds K slots
// (key and value tensors [num_blocks, kv_heads, block_size, head_dim] each): layer l stores its KV
// in slot layer_slot[l] of the blocks of group layer_group[l].
//
// A model with one kind gets one group of all its layers, slot l for layer l: the layout the KV
// cache had before groups existed.
//
//   KvCacheGroups groups = PlanKvCacheGroups(windows);  // per layer: 0 or the window
//   KvCache::Create({.num_layers = groups.num_slots, ...});
#pragma once

#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "common/model_config.h"

namespace pagoda {

struct KvCacheGroups {
  std::vector<int64_t> windows;      // [num_groups]: each group's window, 0 for full attention
  std::vector<int32_t> layer_group;  // [num_layers]
  std::vector<int32_t> layer_slot;   // [num_layers]: the layer's slot, < its group's size
  int32_t num_slots = 0;             // K: key and value tensors per block

  int num_groups() const { return static_cast<int>(windows.size()); }
};

/// The groups of layers whose windows are `layer_windows` (each >= 0; 0: full attention). Full
/// attention comes first, then the windows in increasing order. Empty input: no groups.
KvCacheGroups PlanKvCacheGroups(absl::Span<const int64_t> layer_windows);

/// The groups a model's KV cache uses: PlanKvCacheGroups of its layers' windows when they mix
/// (Gemma 2/3, Qwen2 with max_window_layers), else none — one table for every layer, the layout
/// without groups. None either `with_draft` model: the draft catches up behind the target and
/// may read further back than a window. Every place that sizes or builds a KV cache asks this.
KvCacheGroups KvCacheGroupsFor(const ModelConfig& config, bool with_draft);

}  // namespace pagoda
