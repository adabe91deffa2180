#include "engine/kv_cache_manager.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <ostream>
#include <random>
#include <set>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagoda {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::IsEmpty;
using ::testing::SizeIs;

#define EXPECT_CONSISTENT(kv) EXPECT_TRUE((kv).CheckInvariants().ok()) << (kv).CheckInvariants()

KVCacheManager::Options Small(int32_t num_blocks, bool caching = false, int32_t host = 0) {
  return {.num_device_blocks = num_blocks,
          .num_host_blocks = host,
          .block_size = 4,
          .enable_prefix_caching = caching};
}

std::vector<int32_t> Range(int32_t begin, int32_t end) {
  std::vector<int32_t> tokens;
  for (int32_t t = begin; t < end; ++t) tokens.push_back(t);
  return tokens;
}

std::vector<int32_t> Table(const KVCacheManager& kv, SeqHandle seq, int group = 0) {
  absl::Span<const int32_t> table = kv.BlockTable(seq, group);
  return {table.begin(), table.end()};
}

// Admits `tokens` as `seq` through the prefix cache and computes the whole prompt.
bool Admit(KVCacheManager& kv, SeqHandle seq, const std::vector<int32_t>& tokens,
           uint64_t extra_key = 0) {
  PrefixMatch hit = kv.GetComputedBlocks(tokens, extra_key);
  if (!kv.AllocateSlots(seq, tokens.size() - hit.num_computed_tokens, 0, &hit)) return false;
  kv.CacheBlocks(seq, tokens);
  return true;
}

TEST(KVCacheManager, GrowsTheBlockTableAndReportsNewBlocks) {
  KVCacheManager kv(Small(10));
  ASSERT_TRUE(kv.AllocateSlots(1, 10));
  EXPECT_EQ(kv.NumTokens(1), 10);
  EXPECT_THAT(kv.BlockTable(1), SizeIs(3));
  EXPECT_EQ(kv.TakeNewBlockIds(1), Table(kv, 1));  // new to the workers: the whole table
  ASSERT_TRUE(kv.AllocateSlots(1, 2));
  EXPECT_THAT(kv.TakeNewBlockIds(1), IsEmpty());
  EXPECT_EQ(kv.NumBlocksNeeded(1, 1), 1);
  ASSERT_TRUE(kv.AllocateSlots(1, 1));
  EXPECT_THAT(kv.TakeNewBlockIds(1), ElementsAre(Table(kv, 1)[3]));
  EXPECT_EQ(kv.NumFreeBlocks(), 6);
  EXPECT_DOUBLE_EQ(kv.Usage(), 0.4);
  EXPECT_CONSISTENT(kv);
  kv.Free(1);
  EXPECT_FALSE(kv.Contains(1));
  EXPECT_EQ(kv.NumFreeBlocks(), 10);
  EXPECT_CONSISTENT(kv);
}

TEST(KVCacheManager, AllocationIsAllOrNothing) {
  KVCacheManager kv(Small(4));
  ASSERT_TRUE(kv.AllocateSlots(1, 12));
  EXPECT_EQ(kv.NumBlocksNeeded(2, 8), 2);
  EXPECT_FALSE(kv.AllocateSlots(2, 8));
  EXPECT_FALSE(kv.Contains(2));
  // Lookahead slots count too.
  EXPECT_FALSE(kv.AllocateSlots(1, 1, 4));
  EXPECT_EQ(kv.NumTokens(1), 12);
  EXPECT_THAT(kv.BlockTable(1), SizeIs(3));
  EXPECT_EQ(kv.NumFreeBlocks(), 1);
  ASSERT_TRUE(kv.AllocateSlots(1, 1, 3));
  EXPECT_EQ(kv.NumTokens(1), 13);
  EXPECT_CONSISTENT(kv);
}

TEST(KVCacheManager, SharedPrefixOfThreeBlocksIsComputedOnce) {
  KVCacheManager kv(Small(16, /*caching=*/true));
  std::vector<int32_t> first = Range(0, 14);  // 3 full blocks + 2 tokens
  ASSERT_TRUE(Admit(kv, 1, first));
  EXPECT_EQ(kv.prefix_cache_queries(), 14);
  EXPECT_EQ(kv.prefix_cache_hits(), 0);
  kv.TakeBlockCopies();

  std::vector<int32_t> second = Range(0, 12);
  for (int32_t t = 100; t < 105; ++t) second.push_back(t);
  PrefixMatch hit = kv.GetComputedBlocks(second);
  EXPECT_EQ(hit.num_computed_tokens, 12);
  EXPECT_THAT(hit.block_ids, ElementsAreArray(Table(kv, 1).data(), 3));
  const int32_t free_before = kv.NumFreeBlocks();
  EXPECT_EQ(kv.NumBlocksNeeded(2, 5, 0, &hit), 2);
  ASSERT_TRUE(kv.AllocateSlots(2, 5, 0, &hit));
  EXPECT_EQ(kv.NumFreeBlocks(), free_before - 2);  // only the suffix's 2 blocks
  EXPECT_EQ(kv.NumTokens(2), 17);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(Table(kv, 2)[i], Table(kv, 1)[i]);
    EXPECT_EQ(kv.device_pool().RefCount(Table(kv, 1)[i]), 2);
  }
  EXPECT_EQ(kv.prefix_cache_queries(), 14 + 17);
  EXPECT_EQ(kv.prefix_cache_hits(), 12);
  EXPECT_CONSISTENT(kv);

  // Freed sequences leave their full blocks cached: a third request still hits them.
  kv.CacheBlocks(2, second);
  kv.TakeBlockCopies();
  kv.Free(1);
  kv.Free(2);
  kv.TakeBlockCopies();
  EXPECT_EQ(kv.NumFreeBlocks(), 16);
  EXPECT_EQ(kv.GetComputedBlocks(second).num_computed_tokens, 16);
  EXPECT_CONSISTENT(kv);
}

TEST(KVCacheManager, PromptOfExactlyFullBlocksRecomputesTheLastToken) {
  KVCacheManager kv(Small(16, /*caching=*/true));
  const std::vector<int32_t> prompt = Range(0, 12);  // exactly 3 blocks
  ASSERT_TRUE(Admit(kv, 1, prompt));
  kv.TakeBlockCopies();
  PrefixMatch hit = kv.GetComputedBlocks(prompt);
  EXPECT_EQ(hit.num_computed_tokens, 8);
  EXPECT_THAT(hit.block_ids, SizeIs(2));
  ASSERT_TRUE(kv.AllocateSlots(2, 4, 0, &hit));
  EXPECT_NE(Table(kv, 2)[2], Table(kv, 1)[2]);
  kv.CacheBlocks(2, prompt);  // a duplicate of block 2: stays private, not an error
  EXPECT_EQ(kv.GetComputedBlocks(Range(0, 13)).block_ids[2], Table(kv, 1)[2]);
  EXPECT_CONSISTENT(kv);
}

TEST(KVCacheManager, ExtraKeysSeparateIdenticalTokens) {
  KVCacheManager kv(Small(16, /*caching=*/true));
  const std::vector<int32_t> prompt = Range(0, 9);
  ASSERT_TRUE(Admit(kv, 1, prompt, ExtraKeyFromString("adapter-a")));
  kv.TakeBlockCopies();
  EXPECT_EQ(kv.GetComputedBlocks(prompt, ExtraKeyFromString("adapter-a")).num_computed_tokens, 8);
  EXPECT_EQ(kv.GetComputedBlocks(prompt, ExtraKeyFromString("adapter-b")).num_computed_tokens, 0);
  EXPECT_EQ(kv.GetComputedBlocks(prompt).num_computed_tokens, 0);
}

TEST(KVCacheManager, CachingOffFindsNothingAndCountsNothing) {
  KVCacheManager kv(Small(16));
  ASSERT_TRUE(Admit(kv, 1, Range(0, 9)));
  kv.TakeBlockCopies();
  PrefixMatch hit = kv.GetComputedBlocks(Range(0, 9));
  EXPECT_THAT(hit.block_ids, IsEmpty());
  EXPECT_EQ(kv.prefix_cache_queries(), 0);
}

TEST(KVCacheManager, CountsCachedLeadingBlocksFromHashesTakenElsewhere) {
  KVCacheManager kv(Small(8, /*caching=*/true));
  ASSERT_TRUE(Admit(kv, 1, Range(0, 13)));  // 3 full blocks cached
  kv.TakeBlockCopies();                     // the plan that computes them is sent
  kv.Free(1);                               // evictable, still cached
  for (const std::vector<int32_t>& query :
       {Range(0, 13), Range(0, 12), Range(0, 20), Range(1, 13), std::vector<int32_t>{}}) {
    const std::vector<BlockHash> hashes = KVCacheManager::PrefixBlockHashes(query, 4);
    EXPECT_EQ(hashes.size(), query.empty() ? 0 : (query.size() - 1) / 4) << "never the last token";
    EXPECT_EQ(kv.NumLeadingCachedBlocks(hashes),
              static_cast<int64_t>(kv.GetComputedBlocks(query).block_ids.size()))
        << query.size();
  }
  EXPECT_EQ(kv.NumLeadingCachedBlocks(KVCacheManager::PrefixBlockHashes(Range(0, 20), 4)), 3);
  KVCacheManager off(Small(8));
  ASSERT_TRUE(Admit(off, 1, Range(0, 13)));
  EXPECT_EQ(off.NumLeadingCachedBlocks(KVCacheManager::PrefixBlockHashes(Range(0, 13), 4)), 0);
}

TEST(KVCacheManager, ForkSharesBlocksAndCopiesOnWrite) {
  KVCacheManager kv(Small(16));
  ASSERT_TRUE(kv.AllocateSlots(1, 10, /*num_lookahead_tokens=*/4));        // 4 blocks, last empty
  EXPECT_EQ(kv.Fork(1, 2).code(), absl::StatusCode::kFailedPrecondition);  // writes pending
  EXPECT_THAT(kv.TakeNewBlockIds(1), SizeIs(4));
  EXPECT_THAT(kv.TakeBlockCopies(), IsEmpty());

  ASSERT_TRUE(kv.Fork(1, 2).ok());
  EXPECT_EQ(kv.Fork(1, 2).code(), absl::StatusCode::kAlreadyExists);
  const std::vector<int32_t> parent = Table(kv, 1);
  const std::vector<int32_t> child = Table(kv, 2);
  EXPECT_THAT(child, ElementsAreArray(parent.data(), 3));  // not the empty lookahead block
  for (int i = 0; i < 3; ++i) EXPECT_EQ(kv.device_pool().RefCount(parent[i]), 2);
  EXPECT_EQ(kv.NumTokens(2), 10);
  EXPECT_CONSISTENT(kv);

  // The child writes position 10, in the shared partial block 2.
  EXPECT_EQ(kv.NumBlocksNeeded(2, 1), 1);
  ASSERT_TRUE(kv.AllocateSlots(2, 1));
  const std::vector<int32_t> child_after = Table(kv, 2);
  EXPECT_NE(child_after[2], parent[2]);
  EXPECT_EQ(child_after[0], parent[0]);
  EXPECT_EQ(Table(kv, 1), parent);  // the parent keeps its block
  EXPECT_EQ(kv.TakeNewBlockIds(2), child_after);
  EXPECT_CONSISTENT(kv);

  // Now the parent is its block's only user and writes it in place.
  EXPECT_EQ(kv.NumBlocksNeeded(1, 1), 0);
  ASSERT_TRUE(kv.AllocateSlots(1, 1));
  EXPECT_EQ(Table(kv, 1), parent);
  EXPECT_THAT(kv.TakeReplacedBlockIds(1), IsEmpty());
  EXPECT_CONSISTENT(kv);
  EXPECT_THAT(kv.TakeBlockCopies(), ElementsAre(BlockPair(parent[2], child_after[2])));
  EXPECT_THAT(kv.TakeBlockCopies(), IsEmpty());
  EXPECT_EQ(kv.device_pool().RefCount(parent[2]), 1);
  EXPECT_EQ(kv.device_pool().RefCount(parent[0]), 2);

  kv.Free(1);
  kv.Free(2);
  EXPECT_EQ(kv.NumFreeBlocks(), 16);
  EXPECT_CONSISTENT(kv);
}

TEST(KVCacheManager, ReportsReplacedEntriesWhenASentParentCopiesOnWrite) {
  KVCacheManager kv(Small(16));
  ASSERT_TRUE(kv.AllocateSlots(1, 6));
  kv.TakeNewBlockIds(1);
  kv.TakeBlockCopies();
  ASSERT_TRUE(kv.Fork(1, 2).ok());
  const std::vector<int32_t> before = Table(kv, 1);
  ASSERT_TRUE(kv.AllocateSlots(1, 1));  // the parent writes first
  EXPECT_NE(Table(kv, 1)[1], before[1]);
  EXPECT_THAT(kv.TakeReplacedBlockIds(1), ElementsAre(BlockPair(1, Table(kv, 1)[1])));
  EXPECT_THAT(kv.TakeNewBlockIds(1), IsEmpty());
  EXPECT_THAT(kv.TakeBlockCopies(), ElementsAre(BlockPair(before[1], Table(kv, 1)[1])));
  EXPECT_CONSISTENT(kv);
}

TEST(KVCacheManager, CopyOnWriteIsAllOrNothing) {
  KVCacheManager kv(Small(3));
  ASSERT_TRUE(kv.AllocateSlots(1, 6));
  kv.TakeBlockCopies();
  ASSERT_TRUE(kv.Fork(1, 2).ok());
  ASSERT_TRUE(kv.AllocateSlots(3, 4));  // the last free block
  EXPECT_EQ(kv.NumBlocksNeeded(2, 1), 1);
  EXPECT_FALSE(kv.AllocateSlots(2, 1));
  EXPECT_EQ(Table(kv, 2), Table(kv, 1));
  EXPECT_EQ(kv.NumTokens(2), 6);
  EXPECT_CONSISTENT(kv);
}

TEST(KVCacheManager, SwapsOutAndBackIn) {
  KVCacheManager kv(Small(8, false, /*host=*/8));
  ASSERT_TRUE(kv.AllocateSlots(1, 10));
  const std::vector<int32_t> device = Table(kv, 1);
  kv.TakeNewBlockIds(1);
  EXPECT_EQ(kv.SwapOut(1).status().code(), absl::StatusCode::kFailedPrecondition);
  kv.TakeBlockCopies();

  absl::StatusOr<std::vector<BlockPair>> out = kv.SwapOut(1);
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_THAT(*out, SizeIs(3));
  for (int i = 0; i < 3; ++i) EXPECT_EQ((*out)[i].first, device[i]);
  EXPECT_TRUE(kv.IsSwappedOut(1));
  EXPECT_EQ(kv.NumFreeBlocks(), 8);
  EXPECT_EQ(kv.NumFreeHostBlocks(), 5);
  EXPECT_EQ(kv.SwapOut(1).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_CONSISTENT(kv);

  ASSERT_TRUE(kv.AllocateSlots(2, 24));  // 6 of 8 device blocks
  EXPECT_FALSE(kv.CanSwapIn(1));
  EXPECT_EQ(kv.SwapIn(1).status().code(), absl::StatusCode::kResourceExhausted);
  kv.Free(2);
  ASSERT_TRUE(kv.CanSwapIn(1));
  absl::StatusOr<std::vector<BlockPair>> in = kv.SwapIn(1);
  ASSERT_TRUE(in.ok()) << in.status();
  ASSERT_THAT(*in, SizeIs(3));
  const std::vector<int32_t> back = Table(kv, 1);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ((*in)[i].first, (*out)[i].second);
    EXPECT_EQ((*in)[i].second, back[i]);
  }
  EXPECT_FALSE(kv.IsSwappedOut(1));
  EXPECT_EQ(kv.NumTokens(1), 10);
  EXPECT_EQ(kv.TakeNewBlockIds(1), back);  // new to the workers again
  EXPECT_EQ(kv.NumFreeHostBlocks(), 5);    // read by this plan's swap-in: pinned
  EXPECT_CONSISTENT(kv);
  kv.TakeBlockCopies();
  EXPECT_EQ(kv.NumFreeHostBlocks(), 8);
  kv.Free(1);
  EXPECT_EQ(kv.NumFreeBlocks(), 8);
  EXPECT_CONSISTENT(kv);
}

TEST(KVCacheManager, SwapKeepsSharedBlocksOnTheDevice) {
  KVCacheManager kv(Small(8, false, /*host=*/8));
  ASSERT_TRUE(kv.AllocateSlots(1, 10));
  kv.TakeBlockCopies();
  ASSERT_TRUE(kv.Fork(1, 2).ok());
  ASSERT_TRUE(kv.AllocateSlots(2, 1));  // copy-on-write of block 2
  kv.TakeBlockCopies();
  const std::vector<int32_t> parent = Table(kv, 1);
  absl::StatusOr<std::vector<BlockPair>> out = kv.SwapOut(1);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_THAT(*out, ElementsAre(::testing::Pair(parent[2], ::testing::_)));
  EXPECT_EQ(kv.BlockTable(1)[0], parent[0]);
  EXPECT_EQ(kv.device_pool().RefCount(parent[0]), 2);
  EXPECT_CONSISTENT(kv);
  kv.Free(2);
  absl::StatusOr<std::vector<BlockPair>> in = kv.SwapIn(1);
  ASSERT_TRUE(in.ok()) << in.status();
  EXPECT_THAT(*in, SizeIs(1));
  EXPECT_EQ(Table(kv, 1)[0], parent[0]);
  kv.TakeBlockCopies();
  kv.Free(1);
  EXPECT_EQ(kv.NumFreeBlocks(), 8);
  EXPECT_EQ(kv.NumFreeHostBlocks(), 8);
  EXPECT_CONSISTENT(kv);
}

TEST(KVCacheManager, SwapInTakesBlocksStillCachedWithoutATransfer) {
  KVCacheManager kv(Small(8, /*caching=*/true, /*host=*/8));
  ASSERT_TRUE(Admit(kv, 1, Range(0, 13)));
  kv.TakeBlockCopies();
  absl::StatusOr<std::vector<BlockPair>> out = kv.SwapOut(1);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_THAT(*out, SizeIs(4));
  absl::StatusOr<std::vector<BlockPair>> in = kv.SwapIn(1);
  ASSERT_TRUE(in.ok()) << in.status();
  EXPECT_THAT(*in, SizeIs(1));  // only the partial block moves
  EXPECT_EQ(kv.NumFreeHostBlocks(), 7);
  EXPECT_CONSISTENT(kv);
}

TEST(KVCacheManager, SwapOutNeedsSwapSpace) {
  KVCacheManager kv(Small(8));
  ASSERT_TRUE(kv.AllocateSlots(1, 4));
  kv.TakeBlockCopies();
  EXPECT_EQ(kv.SwapOut(1).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(kv.SwapOut(9).status().code(), absl::StatusCode::kFailedPrecondition);
  KVCacheManager small(Small(8, false, /*host=*/1));
  ASSERT_TRUE(small.AllocateSlots(1, 8));
  small.TakeBlockCopies();
  EXPECT_EQ(small.SwapOut(1).status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_FALSE(small.IsSwappedOut(1));
  EXPECT_CONSISTENT(small);
}

TEST(KVCacheManager, FreeingASequenceOfThePlanUncachesWhatItWasToCompute) {
  KVCacheManager kv(Small(8, /*caching=*/true));
  ASSERT_TRUE(Admit(kv, 1, Range(0, 9)));
  kv.Free(1);  // dropped from the plan before it ran
  EXPECT_EQ(kv.GetComputedBlocks(Range(0, 9)).num_computed_tokens, 0);
  EXPECT_CONSISTENT(kv);
}

TEST(KVCacheManagerDeathTest, FreeingASequenceOthersReadInThisPlanAborts) {
  KVCacheManager kv(Small(8, /*caching=*/true));
  ASSERT_TRUE(Admit(kv, 1, Range(0, 9)));
  ASSERT_TRUE(Admit(kv, 2, Range(0, 9)));  // reads the blocks 1 computes in this plan
  EXPECT_EQ(kv.NumTokens(2), 9);
  EXPECT_EQ(kv.prefix_cache_hits(), 8);
  EXPECT_DEATH(kv.Free(1), "hit blocks");
}

// A sliding window of 6 over blocks of 4: a step that schedules from position p frees the blocks
// wholly before p - 5, which go back to the pool (or stay in the prefix cache, evictable).
TEST(KVCacheManager, FreesTheBlocksBehindASlidingWindow) {
  KVCacheManager::Options options = Small(8, /*caching=*/true);
  options.sliding_window = 6;
  KVCacheManager kv(options);
  const std::vector<int32_t> prompt = Range(100, 110);  // 10 tokens: blocks 0..2
  ASSERT_TRUE(Admit(kv, 1, prompt));
  EXPECT_THAT(Table(kv, 1), SizeIs(3));
  EXPECT_NE(Table(kv, 1)[0], kFreedBlockId);  // scheduled from 0: everything is still seen
  EXPECT_EQ(kv.NumFreeBlocks(), 5);
  kv.TakeBlockCopies();
  // The decode of position 10 sees 5..10: block 0 (positions 0..3) is behind the window.
  ASSERT_TRUE(kv.AllocateSlots(1, 1));
  std::vector<int32_t> table = Table(kv, 1);
  EXPECT_EQ(table[0], kFreedBlockId);
  EXPECT_NE(table[1], kFreedBlockId);
  EXPECT_EQ(kv.NumFreeBlocks(), 6);  // block 0 is evictable again (position 10 is in block 2)
  EXPECT_CONSISTENT(kv);
  // A worker that never held the sequence gets the freed entry as is.
  EXPECT_EQ(kv.TakeNewBlockIds(1)[0], kFreedBlockId);
  kv.TakeBlockCopies();
  // A fork shares only the blocks still held; freeing both gives everything back.
  ASSERT_TRUE(kv.Fork(1, 2).ok());
  EXPECT_EQ(Table(kv, 2)[0], kFreedBlockId);
  ASSERT_TRUE(kv.AllocateSlots(1, 1));  // position 11 sees 6..11: block 0 only, still
  ASSERT_TRUE(kv.AllocateSlots(2, 1));
  EXPECT_CONSISTENT(kv);
  kv.TakeBlockCopies();
  ASSERT_TRUE(kv.AllocateSlots(2, 1));  // position 12 sees 7..12: block 1 (4..7) still seen
  ASSERT_TRUE(kv.AllocateSlots(2, 1));  // the same plan also runs position 13: still seen
  EXPECT_EQ(Table(kv, 2)[1], Table(kv, 1)[1]);
  kv.TakeBlockCopies();
  ASSERT_TRUE(kv.AllocateSlots(2, 1));  // position 14 sees 9..14: block 1 freed
  EXPECT_EQ(Table(kv, 2)[1], kFreedBlockId);
  EXPECT_NE(Table(kv, 1)[1], kFreedBlockId);
  EXPECT_CONSISTENT(kv);
  kv.TakeBlockCopies();
  kv.Free(1);
  kv.Free(2);
  EXPECT_CONSISTENT(kv);
  EXPECT_EQ(kv.NumFreeBlocks(), 8);
  // The freed prompt blocks stayed cached: the same prompt hits its first two blocks.
  EXPECT_EQ(kv.GetComputedBlocks(prompt).num_computed_tokens, 8);
}

// KV cache groups (Gemma-style: group 0 full attention, group 1 a window of 6). Each logical block
// takes a block in every group; the local group frees behind its window, the global one never.
TEST(KVCacheManager, GroupsKeepFullBlocksOnlyForTheGlobalGroup) {
  KVCacheManager::Options options = Small(40, /*caching=*/true);
  options.group_sliding_windows = {0, 6};
  KVCacheManager kv(options);
  ASSERT_EQ(kv.num_groups(), 2);
  const std::vector<int32_t> prompt = Range(100, 110);  // 10 tokens: blocks 0..2
  ASSERT_TRUE(Admit(kv, 1, prompt));
  EXPECT_EQ(kv.NumFreeBlocks(), 40 - 2 * 3);
  kv.TakeBlockCopies();
  // Decode 22 tokens: the sequence reaches 32 positions, 8 logical blocks.
  for (int i = 0; i < 22; ++i) {
    ASSERT_TRUE(kv.AllocateSlots(1, 1));
    kv.TakeBlockCopies();
  }
  EXPECT_CONSISTENT(kv);
  const std::vector<int32_t> global = Table(kv, 1, 0);
  const std::vector<int32_t> local = Table(kv, 1, 1);
  ASSERT_THAT(global, SizeIs(8));
  ASSERT_THAT(local, SizeIs(8));
  EXPECT_EQ(std::count(global.begin(), global.end(), kFreedBlockId), 0);
  // The last query (position 31) saw 26..31: blocks 0..5 of the local group are given back.
  EXPECT_EQ(std::count(local.begin(), local.end(), kFreedBlockId), 6);
  EXPECT_EQ(kv.NumFreeBlocks(), 40 - 8 - 2);
  EXPECT_DOUBLE_EQ(kv.Usage(), 10.0 / 40.0);  // both groups' blocks count
  // The groups never share a block, and a new worker gets each group's own table.
  for (size_t i = 6; i < 8; ++i) EXPECT_NE(global[i], local[i]);
  EXPECT_EQ(kv.TakeNewBlockIds(1, 1)[0], kFreedBlockId);
  EXPECT_THAT(kv.TakeNewBlockIds(1, 0), ElementsAreArray(global));
  kv.TakeBlockCopies();
  kv.Free(1);
  EXPECT_CONSISTENT(kv);
  EXPECT_EQ(kv.NumFreeBlocks(), 40);
}

// A prefix hit must hold in every group: each group caches its copy under its own key, and an
// evicted copy in one group cuts the hit there.
TEST(KVCacheManager, GroupPrefixHitNeedsEveryGroup) {
  KVCacheManager::Options options = Small(12, /*caching=*/true);
  options.group_sliding_windows = {0, 0};
  KVCacheManager kv(options);
  const std::vector<int32_t> prompt = Range(0, 13);  // 3 full blocks + 1 token
  ASSERT_TRUE(Admit(kv, 1, prompt));
  kv.TakeBlockCopies();
  PrefixMatch hit = kv.GetComputedBlocks(prompt);
  EXPECT_EQ(hit.num_computed_tokens, 12);
  ASSERT_THAT(hit.more_block_ids, SizeIs(1));
  EXPECT_THAT(hit.block_ids, ElementsAreArray(Table(kv, 1, 0).data(), 3));
  EXPECT_THAT(hit.more_block_ids[0], ElementsAreArray(Table(kv, 1, 1).data(), 3));
  EXPECT_EQ(kv.NumLeadingCachedBlocks(KVCacheManager::PrefixBlockHashes(prompt, 4)), 3);
  const std::vector<int32_t> group1 = Table(kv, 1, 1);
  kv.Free(1);
  // Evict group 1's copy of block 1 only: allocate until it is reused.
  const BlockHash second =
      KVCacheManager::GroupBlockHash(KVCacheManager::PrefixBlockHashes(prompt, 4)[1], 1);
  int64_t filler = 100;
  while (kv.device_pool().Lookup(second) >= 0) ASSERT_TRUE(kv.AllocateSlots(filler++, 1));
  EXPECT_EQ(kv.GetComputedBlocks(prompt).num_computed_tokens, 4);
  EXPECT_EQ(kv.NumLeadingCachedBlocks(KVCacheManager::PrefixBlockHashes(prompt, 4)), 1);
  EXPECT_EQ(KVCacheManager::GroupBlockHash(second, 0), second);  // group 0: today's hashes
  EXPECT_CONSISTENT(kv);
}

// Fork shares every group's blocks; a write copies on write in each group; swap moves each
// group's exclusive blocks and brings them back.
TEST(KVCacheManager, GroupsForkCopyOnWriteAndSwap) {
  KVCacheManager::Options options = Small(16, /*caching=*/false, /*host=*/8);
  options.group_sliding_windows = {0, 6};
  KVCacheManager kv(options);
  ASSERT_TRUE(kv.AllocateSlots(1, 6));  // blocks 0..1 in both groups
  kv.TakeNewBlockIds(1, 0);
  kv.TakeNewBlockIds(1, 1);
  kv.TakeBlockCopies();
  ASSERT_TRUE(kv.Fork(1, 2).ok());
  EXPECT_EQ(Table(kv, 2, 1), Table(kv, 1, 1));
  EXPECT_EQ(kv.NumBlocksNeeded(1, 1), 2);  // block 1 is shared in both groups
  ASSERT_TRUE(kv.AllocateSlots(1, 1));
  std::vector<BlockPair> copies = kv.TakeBlockCopies();
  ASSERT_THAT(copies, SizeIs(2));
  EXPECT_THAT(kv.TakeReplacedBlockIds(1, 0), SizeIs(1));
  EXPECT_THAT(kv.TakeReplacedBlockIds(1, 1), SizeIs(1));
  EXPECT_CONSISTENT(kv);
  // Sequence 1 owns block 1 of both groups alone now; block 0 stays shared with 2.
  absl::StatusOr<std::vector<BlockPair>> out = kv.SwapOut(1);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_THAT(*out, SizeIs(2));
  EXPECT_CONSISTENT(kv);
  kv.TakeBlockCopies();
  absl::StatusOr<std::vector<BlockPair>> in = kv.SwapIn(1);
  ASSERT_TRUE(in.ok()) << in.status();
  EXPECT_THAT(*in, SizeIs(2));
  EXPECT_CONSISTENT(kv);
  kv.TakeBlockCopies();
  kv.Free(1);
  kv.Free(2);
  EXPECT_EQ(kv.NumFreeBlocks(), 16);
  EXPECT_EQ(kv.NumFreeHostBlocks(), 8);
}

// ---------------------------------------------------------------------------------------------
// Randomized property test. A simulated worker keeps the block tables it was sent (new blocks,
// replaced entries) and the KV content of every physical slot, applying each plan in the order
// of common/step.h (swap-outs, swap-ins, copies, then the forward writes). After every plan,
// every live sequence must read, at each computed position, the KV of its own token prefix.

uint64_t Mix(uint64_t h, int32_t token) {
  h ^= static_cast<uint64_t>(token) + 0x9E3779B97F4A7C15ULL + (h << 6) + (h >> 2);
  return h * 0xBF58476D1CE4E5B9ULL;
}

// What group `group`'s layers store at a position whose token prefix hashes to `value`: the
// groups hold different layers, so a block read through another group's table shows.
uint64_t GroupValue(uint64_t value, int group) {
  return group == 0 ? value : Mix(value, -1 - group);
}

struct SimSeq {
  std::vector<int32_t> tokens;  // known tokens; NumTokens of them have KV
};

class Simulation {
 public:
  Simulation(const KVCacheManager::Options& options, uint32_t seed)
      : options_(options),
        kv_(options),
        rng_(seed),
        device_(options.num_device_blocks, std::vector<uint64_t>(options.block_size, 0)),
        host_(options.num_host_blocks, std::vector<uint64_t>(options.block_size, 0)) {
    for (int i = 0; i < 4; ++i) bases_.push_back(RandomTokens(4 + Uniform(0, 12)));
  }

  void Run(int num_ops) {
    for (int op = 0; op < num_ops; ++op) {
      const int kind = Uniform(0, 99);
      if (kind < 20) {
        Admit();
      } else if (kind < 55) {
        Advance();
      } else if (kind < 63) {
        ForkOne();
      } else if (kind < 71) {
        FreeOne();
      } else if (kind < 77) {
        SwapOutOne();
      } else if (kind < 83) {
        SwapInOne();
      } else {
        EndPlan();
      }
      ASSERT_TRUE(kv_.CheckInvariants().ok()) << "op " << op << ": " << kv_.CheckInvariants();
      if (::testing::Test::HasFailure()) return;
    }
    EndPlan();
    while (!seqs_.empty()) {
      kv_.Free(seqs_.begin()->first);
      seqs_.erase(seqs_.begin());
      ASSERT_TRUE(kv_.CheckInvariants().ok()) << kv_.CheckInvariants();
    }
    kv_.TakeBlockCopies();
    ASSERT_TRUE(kv_.CheckInvariants().ok()) << kv_.CheckInvariants();
    EXPECT_EQ(kv_.NumFreeBlocks(), options_.num_device_blocks);
    EXPECT_EQ(kv_.NumFreeHostBlocks(), options_.num_host_blocks);
    EXPECT_EQ(kv_.NumSequences(), 0u);
    EXPECT_GT(allocations_, 0);
    EXPECT_GT(failed_allocations_, 0);  // the pool is small enough to run out
    EXPECT_GT(plans_, 10);
    if (options_.num_host_blocks > 0) {
      EXPECT_GT(swaps_, 0);
    }
    if (options_.enable_prefix_caching) {
      EXPECT_GT(kv_.prefix_cache_hits(), 0);
    }
    EXPECT_GT(copies_, 0);
    bool any_window = false;
    for (int g = 0; g < kv_.num_groups(); ++g) any_window |= kv_.group_sliding_window(g) > 0;
    if (any_window) {
      EXPECT_GT(freed_reads_skipped_, 0);
    }
  }

 private:
  int Uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  std::vector<int32_t> RandomTokens(int n) {
    std::vector<int32_t> tokens(n);
    for (int32_t& t : tokens) t = Uniform(0, 2);  // a tiny vocabulary: many equal blocks
    return tokens;
  }
  // A live sequence, or -1; `resident` excludes swapped-out ones.
  SeqHandle Pick(bool resident) {
    std::vector<SeqHandle> handles;
    for (const auto& [h, s] : seqs_) {
      if (!resident || !kv_.IsSwappedOut(h)) handles.push_back(h);
    }
    if (handles.empty()) return -1;
    return handles[Uniform(0, static_cast<int>(handles.size()) - 1)];
  }
  // Checks an allocation that failed changed nothing.
  struct Snapshot {
    int32_t free;
    int64_t num_tokens;
    std::vector<std::vector<int32_t>> tables;  // per group
  };
  std::vector<std::vector<int32_t>> Tables(SeqHandle h) {
    std::vector<std::vector<int32_t>> tables;
    for (int g = 0; g < kv_.num_groups(); ++g) tables.push_back(Table(kv_, h, g));
    return tables;
  }
  Snapshot Take(SeqHandle h) { return {kv_.NumFreeBlocks(), kv_.NumTokens(h), Tables(h)}; }
  void ExpectUnchanged(const Snapshot& s, SeqHandle h) {
    EXPECT_EQ(kv_.NumFreeBlocks(), s.free);
    EXPECT_EQ(kv_.NumTokens(h), s.num_tokens);
    EXPECT_EQ(Tables(h), s.tables);
  }

  void Written(SeqHandle h, int64_t begin, int64_t end) {
    touched_.insert(h);
    for (int64_t p = begin; p < end; ++p) writes_[h].insert(p);
  }

  void Admit() {
    const SeqHandle h = next_handle_++;
    std::vector<int32_t> tokens;
    if (Uniform(0, 3) > 0) tokens = bases_[Uniform(0, static_cast<int>(bases_.size()) - 1)];
    std::vector<int32_t> suffix = RandomTokens(Uniform(tokens.empty() ? 1 : 0, 10));
    tokens.insert(tokens.end(), suffix.begin(), suffix.end());
    PrefixMatch hit = kv_.GetComputedBlocks(tokens);
    const int64_t remaining = static_cast<int64_t>(tokens.size()) - hit.num_computed_tokens;
    ASSERT_GE(remaining, 1);
    const int64_t chunk = Uniform(1, static_cast<int>(remaining));
    const int32_t free = kv_.NumFreeBlocks();
    const bool fits = kv_.NumBlocksNeeded(h, chunk, 0, &hit) <= free;
    if (!kv_.AllocateSlots(h, chunk, 0, &hit)) {
      ASSERT_FALSE(fits);
      ++failed_allocations_;
      EXPECT_FALSE(kv_.Contains(h));
      EXPECT_EQ(kv_.NumFreeBlocks(), free);
      return;
    }
    ASSERT_TRUE(fits);
    ++allocations_;
    if (hit.num_computed_tokens > 0) hit_this_plan_ = true;
    seqs_[h].tokens = tokens;
    kv_.CacheBlocks(h, tokens);
    Written(h, hit.num_computed_tokens, hit.num_computed_tokens + chunk);
  }

  // A prefill chunk, or a decode step (with lookahead slots) after "sampling" a token.
  void Advance() {
    const SeqHandle h = Pick(/*resident=*/true);
    if (h < 0) return;
    SimSeq& seq = seqs_[h];
    const int64_t begin = kv_.NumTokens(h);
    if (begin == static_cast<int64_t>(seq.tokens.size())) {
      if (seq.tokens.size() >= 64) return;
      seq.tokens.push_back(Uniform(0, 2));
    }
    const int64_t n = Uniform(1, static_cast<int>(seq.tokens.size() - begin));
    const int64_t lookahead = Uniform(0, 1) ? Uniform(0, 5) : 0;
    const Snapshot before = Take(h);
    const bool fits = kv_.NumBlocksNeeded(h, n, lookahead) <= kv_.NumFreeBlocks();
    if (!kv_.AllocateSlots(h, n, lookahead)) {
      ASSERT_FALSE(fits);
      ++failed_allocations_;
      ExpectUnchanged(before, h);
      // Preempt another sequence not in this plan, by recompute or swap.
      const SeqHandle victim = Pick(/*resident=*/true);
      if (victim >= 0 && victim != h && !touched_.contains(victim)) {
        absl::StatusOr<std::vector<BlockPair>> pairs =
            Uniform(0, 1) ? kv_.SwapOut(victim) : absl::UnavailableError("recompute");
        if (pairs.ok()) {
          ++swaps_;
          swap_out_.insert(swap_out_.end(), pairs->begin(), pairs->end());
          mirror_.erase(victim);
        } else if (!kv_.IsSwappedOut(victim)) {
          DropSeq(victim);
        }
      }
      return;
    }
    ASSERT_TRUE(fits);
    ++allocations_;
    kv_.CacheBlocks(h, seq.tokens);
    Written(h, begin, begin + n);
  }

  void ForkOne() {
    const SeqHandle parent = Pick(/*resident=*/true);
    if (parent < 0) return;
    const SeqHandle child = next_handle_++;
    absl::Status status = kv_.Fork(parent, child);
    if (touched_.contains(parent)) {
      ASSERT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
      return;
    }
    ASSERT_TRUE(status.ok()) << status;
    SimSeq seq = seqs_[parent];
    // Beam search: the child may take other tokens where no KV exists yet.
    for (size_t p = kv_.NumTokens(child); p < seq.tokens.size(); ++p) seq.tokens[p] = Uniform(0, 2);
    seqs_[child] = std::move(seq);
  }

  void DropSeq(SeqHandle h) {
    kv_.Free(h);
    seqs_.erase(h);
    mirror_.erase(h);
    writes_.erase(h);
    touched_.erase(h);
  }

  void FreeOne() {
    const SeqHandle h = Pick(/*resident=*/false);
    if (h < 0) return;
    // Freeing a sequence of the plan is fine unless another one hit blocks it computes.
    if (touched_.contains(h) && hit_this_plan_) return;
    DropSeq(h);
  }

  void SwapOutOne() {
    const SeqHandle h = Pick(/*resident=*/true);
    if (h < 0) return;
    const Snapshot before = Take(h);
    absl::StatusOr<std::vector<BlockPair>> pairs = kv_.SwapOut(h);
    if (options_.num_host_blocks == 0 || touched_.contains(h)) {
      ASSERT_EQ(pairs.status().code(), absl::StatusCode::kFailedPrecondition);
    }
    if (!pairs.ok()) {
      ExpectUnchanged(before, h);
      return;
    }
    ++swaps_;
    swap_out_.insert(swap_out_.end(), pairs->begin(), pairs->end());
    mirror_.erase(h);
  }

  void SwapInOne() {
    std::vector<SeqHandle> swapped;
    for (const auto& [h, s] : seqs_) {
      if (kv_.IsSwappedOut(h)) swapped.push_back(h);
    }
    if (swapped.empty()) return;
    const SeqHandle h = swapped[Uniform(0, static_cast<int>(swapped.size()) - 1)];
    const bool can = kv_.CanSwapIn(h);
    absl::StatusOr<std::vector<BlockPair>> pairs = kv_.SwapIn(h);
    ASSERT_EQ(pairs.ok(), can) << pairs.status();
    if (!pairs.ok()) {
      ASSERT_EQ(pairs.status().code(), absl::StatusCode::kResourceExhausted);
      return;
    }
    touched_.insert(h);
    // A swap-in may take blocks this plan computes from the prefix cache, as a hit does.
    hit_this_plan_ = true;
    swap_in_.insert(swap_in_.end(), pairs->begin(), pairs->end());
  }

  // Builds the plan's deltas, then applies it as a worker would and checks every KV slot.
  void EndPlan() {
    const int num_groups = kv_.num_groups();
    for (auto& [h, seq] : seqs_) {
      if (kv_.IsSwappedOut(h)) continue;
      auto [it, is_new] = mirror_.try_emplace(h, num_groups);
      for (int g = 0; g < num_groups; ++g) {
        std::vector<int32_t>& table = it->second[g];
        if (!is_new) {
          for (const auto& [index, block] : kv_.TakeReplacedBlockIds(h, g)) table[index] = block;
        }
        std::vector<int32_t> added = kv_.TakeNewBlockIds(h, g);
        table.insert(table.end(), added.begin(), added.end());
        // Entries freed behind the window after the workers got them stay stale there.
        std::vector<int32_t> want = Table(kv_, h, g);
        ASSERT_EQ(table.size(), want.size()) << "sequence " << h << " group " << g;
        for (size_t i = 0; i < want.size(); ++i) {
          if (want[i] == kFreedBlockId) continue;
          ASSERT_EQ(table[i], want[i]) << "sequence " << h << " group " << g << " entry " << i;
        }
      }
    }
    const std::vector<BlockPair> copies = kv_.TakeBlockCopies();
    copies_ += static_cast<int>(copies.size());
    ++plans_;
    for (const auto& [d, hb] : swap_out_) host_[hb] = device_[d];
    for (const auto& [hb, d] : swap_in_) device_[d] = host_[hb];
    for (const auto& [src, dst] : copies) device_[dst] = device_[src];
    const int32_t bs = options_.block_size;
    for (const auto& [h, positions] : writes_) {
      const SimSeq& seq = seqs_.at(h);
      for (int64_t p : positions) {
        for (int g = 0; g < num_groups; ++g) {
          device_[mirror_.at(h)[g][p / bs]][p % bs] = GroupValue(PrefixValue(seq.tokens, p), g);
        }
      }
    }
    swap_out_.clear();
    swap_in_.clear();
    writes_.clear();
    touched_.clear();
    hit_this_plan_ = false;
    // Every sequence reads its own prefix's KV, resident or swapped out.
    for (const auto& [h, seq] : seqs_) {
      for (int g = 0; g < num_groups; ++g) {
        absl::Span<const int32_t> table = kv_.BlockTable(h, g);
        const int64_t window = kv_.group_sliding_window(g);
        uint64_t value = 0;
        for (int64_t p = 0; p < kv_.NumTokens(h); ++p) {
          value = Mix(value, seq.tokens[p]);
          const int32_t entry = table[p / bs];
          if (entry == kFreedBlockId) {
            // Only blocks that no query of the group from NumTokens on can see are given back.
            ASSERT_GT(window, 0) << "sequence " << h << " group " << g;
            ASSERT_LE((p / bs + 1) * bs, kv_.NumTokens(h) - window + 1)
                << "sequence " << h << " group " << g << " position " << p;
            ++freed_reads_skipped_;
            continue;
          }
          const uint64_t stored = entry >= 0 ? device_[entry][p % bs] : host_[-entry - 1][p % bs];
          ASSERT_EQ(stored, GroupValue(value, g))
              << "sequence " << h << " group " << g << " position " << p;
        }
      }
    }
  }

  static uint64_t PrefixValue(const std::vector<int32_t>& tokens, int64_t position) {
    uint64_t value = 0;
    for (int64_t p = 0; p <= position; ++p) value = Mix(value, tokens[p]);
    return value;
  }

  const KVCacheManager::Options options_;
  KVCacheManager kv_;
  std::mt19937 rng_;
  std::vector<std::vector<int32_t>> bases_;
  std::map<SeqHandle, SimSeq> seqs_;
  SeqHandle next_handle_ = 0;
  // The simulated workers.
  std::map<SeqHandle, std::vector<std::vector<int32_t>>> mirror_;  // per group
  std::vector<std::vector<uint64_t>> device_;
  std::vector<std::vector<uint64_t>> host_;
  // The plan being built.
  std::map<SeqHandle, std::set<int64_t>> writes_;
  std::set<SeqHandle> touched_;
  std::vector<BlockPair> swap_out_;
  std::vector<BlockPair> swap_in_;
  bool hit_this_plan_ = false;
  // Coverage.
  int allocations_ = 0;
  int failed_allocations_ = 0;
  int plans_ = 0;
  int swaps_ = 0;
  int copies_ = 0;
  int freed_reads_skipped_ = 0;
};

struct PropertyCase {
  bool caching;
  int32_t host_blocks;
  uint32_t seed;
  int64_t sliding_window = 0;
  std::vector<int64_t> group_windows = {};  // KV cache groups; empty: one
};

void PrintTo(const PropertyCase& c, std::ostream* os) {
  *os << "caching=" << c.caching << " host_blocks=" << c.host_blocks << " seed=" << c.seed
      << " sliding_window=" << c.sliding_window << " groups=[";
  for (int64_t w : c.group_windows) *os << " " << w;
  *os << " ]";
}

class KVCacheManagerProperty : public ::testing::TestWithParam<PropertyCase> {};

TEST_P(KVCacheManagerProperty, RandomWorkloadKeepsInvariantsAndLeaksNothing) {
  const PropertyCase& c = GetParam();
  // Every group takes a block per logical block: scale the pools so that as many sequences fit.
  const int32_t num_groups = std::max<int32_t>(1, static_cast<int32_t>(c.group_windows.size()));
  Simulation sim({.num_device_blocks = 24 * num_groups,
                  .num_host_blocks = c.host_blocks * num_groups,
                  .block_size = 4,
                  .enable_prefix_caching = c.caching,
                  .sliding_window = c.sliding_window,
                  .group_sliding_windows = c.group_windows},
                 c.seed);
  sim.Run(5000);
}

std::vector<PropertyCase> PropertyCases() {
  std::vector<PropertyCase> cases;
  uint32_t seed = 1;
  for (bool caching : {false, true}) {
    for (int32_t host_blocks : {0, 6, 16}) {
      for (int i = 0; i < 3; ++i) cases.push_back({caching, host_blocks, seed++});
      // Sliding windows of one token, of a block and a half, and of several blocks.
      for (int64_t window : {1, 6, 13}) cases.push_back({caching, host_blocks, seed++, window});
      // KV cache groups: Gemma 2's alternation, a full group beside several windows, and
      // two full groups (Gemma 3 1B's layout cut into equal groups).
      for (std::vector<int64_t> windows :
           {std::vector<int64_t>{6, 0}, std::vector<int64_t>{0, 1, 13, 6},
            std::vector<int64_t>{0, 0, 5}}) {
        cases.push_back({caching, host_blocks, seed++, 0, windows});
      }
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Workloads, KVCacheManagerProperty, ::testing::ValuesIn(PropertyCases()));

}  // namespace
}  // namespace pagoda
