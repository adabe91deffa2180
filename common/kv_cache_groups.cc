#include "common/kv_cache_groups.h"

#include <algorithm>
#include <map>
#include <vector>

namespace pagoda {

KvCacheGroups PlanKvCacheGroups(absl::Span<const int64_t> layer_windows) {
  KvCacheGroups groups;
  if (layer_windows.empty()) return groups;
  std::map<int64_t, std::vector<int32_t>> kinds;  // window -> its layers; 0 (full) first
  for (size_t l = 0; l < layer_windows.size(); ++l) {
    kinds[layer_windows[l]].push_back(static_cast<int32_t>(l));
  }
  size_t k = layer_windows.size();
  for (const auto& [window, layers] : kinds) k = std::min(k, layers.size());
  groups.num_slots = static_cast<int32_t>(k);
  groups.layer_group.resize(layer_windows.size());
  groups.layer_slot.resize(layer_windows.size());
  for (const auto& [window, layers] : kinds) {
    for (size_t i = 0; i < layers.size(); ++i) {
      if (i % k == 0) groups.windows.push_back(window);
      groups.layer_group[layers[i]] = static_cast<int32_t>(groups.windows.size() - 1);
      groups.layer_slot[layers[i]] = static_cast<int32_t>(i % k);
    }
  }
  return groups;
}

KvCacheGroups KvCacheGroupsFor(const ModelConfig& config, bool with_draft) {
  if (with_draft) return {};
  std::vector<int64_t> windows;
  for (int64_t l = 0; l < config.num_hidden_layers; ++l) windows.push_back(config.LayerWindow(l));
  KvCacheGroups groups = PlanKvCacheGroups(windows);
  if (groups.num_groups() <= 1) return {};  // one kind: the layout without groups
  return groups;
}

}  // namespace pagoda
