#include "common/kv_cache_groups.h"

#include <cstdint>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagoda {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::IsEmpty;

TEST(KvCacheGroups, OneKindIsOneGroupWithASlotPerLayer) {
  for (int64_t window : {int64_t{0}, int64_t{4096}}) {
    const KvCacheGroups groups = PlanKvCacheGroups(std::vector<int64_t>(5, window));
    EXPECT_THAT(groups.windows, ElementsAre(window));
    EXPECT_EQ(groups.num_slots, 5);
    EXPECT_THAT(groups.layer_group, ElementsAre(0, 0, 0, 0, 0));
    EXPECT_THAT(groups.layer_slot, ElementsAre(0, 1, 2, 3, 4));
  }
}

TEST(KvCacheGroups, AlternatingLayersGetOneGroupPerKind) {
  // Gemma 2: even layers slide, odd ones are global.
  const KvCacheGroups groups = PlanKvCacheGroups({4096, 0, 4096, 0});
  EXPECT_THAT(groups.windows, ElementsAre(0, 4096));
  EXPECT_EQ(groups.num_slots, 2);
  EXPECT_THAT(groups.layer_group, ElementsAre(1, 0, 1, 0));
  EXPECT_THAT(groups.layer_slot, ElementsAre(0, 0, 1, 1));
}

TEST(KvCacheGroups, Gemma3OneBillionCutsTheLocalLayersIntoGroupsOfTheGlobalCount) {
  // 26 layers, every 6th global: 4 global, 22 local in groups of 4, 4, 4, 4, 4, 2.
  std::vector<int64_t> windows;
  for (int l = 0; l < 26; ++l) windows.push_back((l + 1) % 6 == 0 ? 0 : 512);
  const KvCacheGroups groups = PlanKvCacheGroups(windows);
  EXPECT_THAT(groups.windows, ElementsAre(0, 512, 512, 512, 512, 512, 512));
  EXPECT_EQ(groups.num_slots, 4);
  std::vector<int> size(groups.num_groups(), 0);
  for (int l = 0; l < 26; ++l) {
    EXPECT_EQ(groups.windows[groups.layer_group[l]], windows[l]) << "layer " << l;
    EXPECT_EQ(groups.layer_slot[l], size[groups.layer_group[l]]++) << "layer " << l;
  }
  EXPECT_THAT(size, ElementsAreArray({4, 4, 4, 4, 4, 4, 2}));
  EXPECT_EQ(groups.layer_group[5], 0);
  EXPECT_EQ(groups.layer_group[0], 1);
  EXPECT_EQ(groups.layer_group[24], 6);
}

TEST(KvCacheGroups, NoLayersNoGroups) {
  const KvCacheGroups groups = PlanKvCacheGroups({});
  EXPECT_THAT(groups.windows, IsEmpty());
  EXPECT_EQ(groups.num_slots, 0);
}

}  // namespace
}  // namespace pagoda
