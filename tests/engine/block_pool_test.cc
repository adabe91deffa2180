#include "engine/block_pool.h"

#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagoda {
namespace {

using ::testing::ElementsAre;

BlockHash HashOf(std::vector<int32_t> tokens, uint64_t extra_key = 0) {
  return HashBlockTokens(BlockHash{}, tokens, extra_key);
}

TEST(BlockPool, AllocatesAndFreesWithCounters) {
  BlockPool pool(8, /*enable_caching=*/false);
  EXPECT_EQ(pool.NumFreeBlocks(), 8);
  EXPECT_EQ(pool.Usage(), 0.0);
  std::vector<int32_t> blocks;
  ASSERT_TRUE(pool.Allocate(3, &blocks));
  ASSERT_EQ(blocks.size(), 3u);
  EXPECT_EQ(absl::flat_hash_set<int32_t>(blocks.begin(), blocks.end()).size(), 3u);
  for (int32_t block : blocks) EXPECT_EQ(pool.RefCount(block), 1);
  EXPECT_EQ(pool.NumFreeBlocks(), 5);
  EXPECT_DOUBLE_EQ(pool.Usage(), 3.0 / 8.0);
  pool.IncRef(blocks[0]);
  pool.DecRef(blocks[0]);
  EXPECT_EQ(pool.RefCount(blocks[0]), 1);
  for (int32_t block : blocks) pool.DecRef(block);
  EXPECT_EQ(pool.NumFreeBlocks(), 8);
  EXPECT_TRUE(pool.CheckInvariants().ok()) << pool.CheckInvariants();
}

TEST(BlockPool, AllocationIsAllOrNothing) {
  BlockPool pool(4, /*enable_caching=*/false);
  std::vector<int32_t> blocks;
  ASSERT_TRUE(pool.Allocate(3, &blocks));
  EXPECT_FALSE(pool.Allocate(2, &blocks));
  EXPECT_EQ(blocks.size(), 3u);
  EXPECT_EQ(pool.NumFreeBlocks(), 1);
  EXPECT_TRUE(pool.Allocate(1, &blocks));
  EXPECT_EQ(pool.NumFreeBlocks(), 0);
  EXPECT_TRUE(pool.CheckInvariants().ok()) << pool.CheckInvariants();
}

TEST(BlockPool, EvictsUnreferencedCachedBlocksInLruOrder) {
  BlockPool pool(4, /*enable_caching=*/true);
  std::vector<int32_t> blocks;
  ASSERT_TRUE(pool.Allocate(4, &blocks));
  std::vector<BlockHash> hashes;
  for (int32_t i = 0; i < 4; ++i) {
    hashes.push_back(HashOf({i, i, i, i}));
    ASSERT_TRUE(pool.CacheBlock(blocks[i], hashes[i]));
  }
  // Freed in the order 2, 0, 3, 1: evicted in that order.
  for (int32_t i : {2, 0, 3, 1}) pool.DecRef(blocks[i]);
  EXPECT_EQ(pool.NumFreeBlocks(), 4);
  EXPECT_EQ(pool.NumCachedBlocks(), 4);
  EXPECT_THAT(pool.FreeListForTesting(), ElementsAre(blocks[2], blocks[0], blocks[3], blocks[1]));

  std::vector<int32_t> taken;
  ASSERT_TRUE(pool.Allocate(1, &taken));
  EXPECT_EQ(taken[0], blocks[2]);
  EXPECT_EQ(pool.Lookup(hashes[2]), -1);
  EXPECT_EQ(pool.HashOf(blocks[2]), nullptr);
  EXPECT_EQ(pool.Lookup(hashes[0]), blocks[0]);

  // A hit takes a cached block out of the middle of the free list.
  pool.IncRef(blocks[3]);
  EXPECT_THAT(pool.FreeListForTesting(), ElementsAre(blocks[0], blocks[1]));
  ASSERT_TRUE(pool.Allocate(1, &taken));
  EXPECT_EQ(taken[1], blocks[0]);
  EXPECT_EQ(pool.Lookup(hashes[3]), blocks[3]);
  EXPECT_TRUE(pool.CheckInvariants().ok()) << pool.CheckInvariants();
}

TEST(BlockPool, ReusesUncachedBlocksBeforeEvictingCachedOnes) {
  BlockPool pool(3, /*enable_caching=*/true);
  std::vector<int32_t> blocks;
  ASSERT_TRUE(pool.Allocate(3, &blocks));
  ASSERT_TRUE(pool.CacheBlock(blocks[0], HashOf({1, 2})));
  pool.DecRef(blocks[0]);  // cached
  pool.DecRef(blocks[1]);  // uncached, freed later
  std::vector<int32_t> taken;
  ASSERT_TRUE(pool.Allocate(1, &taken));
  EXPECT_EQ(taken[0], blocks[1]);
  EXPECT_EQ(pool.Lookup(HashOf({1, 2})), blocks[0]);
  EXPECT_TRUE(pool.CheckInvariants().ok()) << pool.CheckInvariants();
}

TEST(BlockPool, KeepsTheFirstCopyOfADuplicateAndUncaches) {
  BlockPool pool(2, /*enable_caching=*/true);
  std::vector<int32_t> blocks;
  ASSERT_TRUE(pool.Allocate(2, &blocks));
  const BlockHash hash = HashOf({5, 6, 7});
  EXPECT_TRUE(pool.CacheBlock(blocks[0], hash));
  EXPECT_FALSE(pool.CacheBlock(blocks[1], hash));
  EXPECT_FALSE(pool.CacheBlock(blocks[0], HashOf({1})));  // already cached
  EXPECT_EQ(pool.Lookup(hash), blocks[0]);
  pool.UncacheBlock(blocks[0]);
  EXPECT_EQ(pool.Lookup(hash), -1);
  EXPECT_TRUE(pool.CacheBlock(blocks[1], hash));
  EXPECT_TRUE(pool.CheckInvariants().ok()) << pool.CheckInvariants();
}

TEST(BlockPool, CachingOffCachesNothing) {
  BlockPool pool(2, /*enable_caching=*/false);
  std::vector<int32_t> blocks;
  ASSERT_TRUE(pool.Allocate(1, &blocks));
  EXPECT_FALSE(pool.CacheBlock(blocks[0], HashOf({1})));
  EXPECT_EQ(pool.Lookup(HashOf({1})), -1);
}

TEST(BlockHash, ChainsOverParentTokensAndExtraKeys) {
  const std::vector<int32_t> tokens = {1, 2, 3, 4};
  const BlockHash base = HashOf(tokens);
  EXPECT_EQ(base, HashOf(tokens));  // deterministic
  EXPECT_FALSE(base == HashOf({1, 2, 3, 5}));
  EXPECT_FALSE(base == HashOf({2, 1, 3, 4}));
  EXPECT_FALSE(base == HashOf({1, 2, 3}));
  EXPECT_FALSE(base == HashOf({1, 2, 3, 4, 0}));
  EXPECT_FALSE(base == HashOf(tokens, /*extra_key=*/1));
  EXPECT_FALSE(HashOf(tokens, 1) == HashOf(tokens, 2));
  EXPECT_FALSE(HashOf(tokens, ExtraKeyFromString("lora-a")) ==
               HashOf(tokens, ExtraKeyFromString("lora-b")));
  EXPECT_EQ(ExtraKeyFromString("salt"), ExtraKeyFromString("salt"));
  EXPECT_FALSE(HashBlockTokens(base, tokens, 0) == HashBlockTokens(HashOf({9}), tokens, 0));
  EXPECT_FALSE(HashBlockTokens(base, tokens, 0) == base);
}

TEST(BlockHash, HasNoCollisionsOverManySimilarBlocks) {
  // Every 4-token block over a 12-token vocabulary, under two parents and two extra keys.
  absl::flat_hash_set<uint64_t> his;
  absl::flat_hash_set<uint64_t> los;
  size_t count = 0;
  for (const BlockHash& parent : {BlockHash{}, HashOf({7})}) {
    for (uint64_t extra_key : {0ull, 1ull}) {
      std::vector<int32_t> tokens(4);
      for (int32_t code = 0; code < 12 * 12 * 12 * 12; ++code) {
        int32_t rest = code;
        for (int32_t& token : tokens) {
          token = rest % 12;
          rest /= 12;
        }
        const BlockHash hash = HashBlockTokens(parent, tokens, extra_key);
        his.insert(hash.hi);
        los.insert(hash.lo);
        ++count;
      }
    }
  }
  // Each 64-bit lane alone is collision-free here.
  EXPECT_EQ(his.size(), count);
  EXPECT_EQ(los.size(), count);
}

}  // namespace
}  // namespace pagoda
