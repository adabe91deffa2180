#include "kernels/block_copy.h"

#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagoda::kernels {
namespace {

using ::testing::HasSubstr;

// A cache of `num_tensors` tensors of `num_blocks` blocks of `block_bytes` random bytes.
struct Cache {
  Cache(int64_t num_tensors, int64_t num_blocks, int64_t block_bytes, uint32_t seed)
      : block_bytes(block_bytes), tensors(num_tensors) {
    std::mt19937 rng(seed);
    for (auto& t : tensors) {
      t.resize(num_blocks * block_bytes);
      for (std::byte& b : t) b = static_cast<std::byte>(rng());
    }
    for (auto& t : tensors) {
      src.push_back(t.data());
      dst.push_back(t.data());
    }
  }
  std::vector<std::byte> Block(int64_t tensor, int64_t block) const {
    const auto begin = tensors[tensor].begin() + block * block_bytes;
    return {begin, begin + block_bytes};
  }

  int64_t block_bytes;
  std::vector<std::vector<std::byte>> tensors;
  std::vector<const void*> src;
  std::vector<void*> dst;
};

// The plain reference: each pair, in order, block by block.
void ReferenceCopy(const Cache& from, Cache& to, const std::vector<int32_t>& pairs) {
  for (size_t i = 0; i + 1 < pairs.size(); i += 2) {
    for (size_t t = 0; t < to.tensors.size(); ++t) {
      const std::vector<std::byte> block = from.Block(t, pairs[i]);
      std::copy(block.begin(), block.end(), to.tensors[t].begin() + pairs[i + 1] * to.block_bytes);
    }
  }
}

BlockCopyParams Within(Cache& c, int64_t num_blocks, const std::vector<int32_t>& pairs) {
  return {.src = c.src.data(),
          .dst = c.dst.data(),
          .num_tensors = static_cast<int64_t>(c.tensors.size()),
          .block_bytes = c.block_bytes,
          .num_src_blocks = num_blocks,
          .num_dst_blocks = num_blocks,
          .block_pairs = pairs.data(),
          .num_pairs = static_cast<int64_t>(pairs.size() / 2)};
}

TEST(BlockCopy, CopiesBlocksWithinOneCacheInPairOrder) {
  // Odd sizes: 7 tensors (3 layers' K and V plus one), 11 blocks of 3 * 5 * 2 bytes (bf16).
  Cache cache(7, 11, 30, 1);
  Cache expected = cache;
  // A chain (2 -> 5, then 5 -> 9 copies the new block 5), a self-copy and a block copied twice.
  const std::vector<int32_t> pairs = {2, 5, 5, 9, 4, 4, 0, 10, 0, 1};
  ReferenceCopy(expected, expected, pairs);
  ASSERT_TRUE(CopyBlocks(Within(cache, 11, pairs)).ok());
  EXPECT_EQ(cache.tensors, expected.tensors);
  EXPECT_EQ(cache.Block(3, 9), expected.Block(3, 2));
}

TEST(BlockCopy, SwapsBlocksBetweenCachesOfDifferentSizes) {
  // Many tensors and large blocks, so the copy runs across threads.
  Cache device(64, 9, 4096 + 12, 2);
  Cache host(64, 5, 4096 + 12, 3);
  Cache expected_host = host;
  const std::vector<int32_t> out = {8, 0, 3, 4, 0, 2};  // (device, host)
  ReferenceCopy(device, expected_host, out);
  BlockCopyParams p{.src = device.src.data(),
                    .dst = host.dst.data(),
                    .num_tensors = 64,
                    .block_bytes = host.block_bytes,
                    .num_src_blocks = 9,
                    .num_dst_blocks = 5,
                    .block_pairs = out.data(),
                    .num_pairs = 3};
  ASSERT_TRUE(CopyBlocks(p).ok());
  EXPECT_EQ(host.tensors, expected_host.tensors);

  Cache expected_device = device;
  const std::vector<int32_t> in = {4, 1, 0, 7};  // (host, device)
  ReferenceCopy(host, expected_device, in);
  p = {.src = host.src.data(),
       .dst = device.dst.data(),
       .num_tensors = 64,
       .block_bytes = host.block_bytes,
       .num_src_blocks = 5,
       .num_dst_blocks = 9,
       .block_pairs = in.data(),
       .num_pairs = 2};
  ASSERT_TRUE(CopyBlocks(p).ok());
  EXPECT_EQ(device.tensors, expected_device.tensors);
}

TEST(BlockCopy, BlockOutsideItsCacheCopiesNothing) {
  Cache cache(3, 4, 8, 4);
  const Cache before = cache;
  const std::vector<int32_t> pairs = {0, 1, 2, 4};
  const absl::Status s = CopyBlocks(Within(cache, 4, pairs));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("block copy 2 -> 4 is outside [0, 4)"));
  EXPECT_EQ(cache.tensors, before.tensors);

  const std::vector<int32_t> negative = {-1, 0};
  EXPECT_EQ(CopyBlocks(Within(cache, 4, negative)).code(), absl::StatusCode::kInvalidArgument);

  Cache host(3, 2, 8, 5);
  const std::vector<int32_t> swap = {3, 2};  // the source holds 4 blocks, the host 2
  const BlockCopyParams across{.src = cache.src.data(),
                               .dst = host.dst.data(),
                               .num_tensors = 3,
                               .block_bytes = 8,
                               .num_src_blocks = 4,
                               .num_dst_blocks = 2,
                               .block_pairs = swap.data(),
                               .num_pairs = 1};
  const absl::Status a = CopyBlocks(across);
  EXPECT_EQ(a.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(a.message()), HasSubstr("3 -> 2 is outside [0, 4) -> [0, 2)"));
}

TEST(BlockCopy, BadParamsAreInvalidArgument) {
  Cache cache(2, 4, 8, 6);
  const std::vector<int32_t> pairs = {0, 1};
  BlockCopyParams p = Within(cache, 4, pairs);
  p.block_bytes = 0;
  EXPECT_THAT(std::string(CopyBlocks(p).message()), HasSubstr("block_copy: bad shape"));
  p = Within(cache, 4, pairs);
  p.num_pairs = -1;
  EXPECT_THAT(std::string(CopyBlocks(p).message()), HasSubstr("block_copy: bad shape"));
  p = Within(cache, 4, pairs);
  p.block_pairs = nullptr;
  EXPECT_THAT(std::string(CopyBlocks(p).message()), HasSubstr("block_pairs is null"));
  std::vector<void*> dst = {cache.dst[0], nullptr};
  p = Within(cache, 4, pairs);
  p.dst = dst.data();
  EXPECT_THAT(std::string(CopyBlocks(p).message()), HasSubstr("tensor 1 has a null src or dst"));
  p = Within(cache, 4, pairs);
  p.src = nullptr;
  EXPECT_THAT(std::string(CopyBlocks(p).message()), HasSubstr("src or dst is null"));
  // No pairs: nothing to copy, nothing read.
  p = Within(cache, 4, {});
  p.block_pairs = nullptr;
  EXPECT_TRUE(CopyBlocks(p).ok());
}

}  // namespace
}  // namespace pagoda::kernels
