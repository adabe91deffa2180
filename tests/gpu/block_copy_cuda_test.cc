// kernels/cuda/block_copy.cu against its CPU twin: copy-on-write within device caches (chained
// pairs, a block onto itself) and a swap out to a host cache. Bound: exact bytes.
// Needs a CUDA device; skips without one.
#include <cstdint>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/block_copy.h"
#include "kernels/cuda/device_memory.h"
#include "tests/gpu/cuda_test_util.h"

namespace pagoda::kernels {
namespace {

using testing::DeviceArray;

constexpr int64_t kTensors = 3;
constexpr int64_t kBlocks = 7;
constexpr int64_t kBlockBytes = 4 * 37;  // 37 floats per block of one tensor

std::vector<uint32_t> RandomWords(std::mt19937& rng) {
  std::vector<uint32_t> words(kBlocks * kBlockBytes / 4);
  for (uint32_t& w : words) w = static_cast<uint32_t>(rng());
  return words;
}

TEST(BlockCopyCuda, CopyOnWriteWithinOneCacheMatchesCpu) {
  if (!testing::HasCudaDevice()) GTEST_SKIP() << "no CUDA device";
  std::mt19937 rng(5);
  std::vector<std::vector<uint32_t>> host;
  for (int64_t t = 0; t < kTensors; ++t) host.push_back(RandomWords(rng));
  // 2 -> 5, then 5 -> 6 (sees the first copy), 3 -> 3 (no change), 0 -> 2.
  const std::vector<int32_t> pairs = {2, 5, 5, 6, 3, 3, 0, 2};

  std::vector<std::vector<uint32_t>> expected = host;
  std::vector<const void*> src;
  std::vector<void*> dst;
  for (auto& e : expected) {
    src.push_back(e.data());
    dst.push_back(e.data());
  }
  ASSERT_TRUE(CopyBlocks({.src = src.data(),
                          .dst = dst.data(),
                          .num_tensors = kTensors,
                          .block_bytes = kBlockBytes,
                          .num_src_blocks = kBlocks,
                          .num_dst_blocks = kBlocks,
                          .block_pairs = pairs.data(),
                          .num_pairs = 4})
                  .ok());

  std::vector<DeviceArray<uint32_t>> device;
  for (const auto& h : host) device.emplace_back(h);
  std::vector<const void*> dsrc;
  std::vector<void*> ddst;
  for (auto& d : device) {
    dsrc.push_back(d.get());
    ddst.push_back(d.get());
  }
  const absl::Status s = CopyBlocks({.src = dsrc.data(),
                                     .dst = ddst.data(),
                                     .num_tensors = kTensors,
                                     .block_bytes = kBlockBytes,
                                     .num_src_blocks = kBlocks,
                                     .num_dst_blocks = kBlocks,
                                     .block_pairs = pairs.data(),
                                     .num_pairs = 4,
                                     .device = Device::kCuda});
  ASSERT_TRUE(s.ok()) << s;
  ASSERT_TRUE(cuda::Synchronize().ok());
  for (int64_t t = 0; t < kTensors; ++t) testing::ExpectSameBits(device[t].Host(), expected[t]);
}

TEST(BlockCopyCuda, SwapsBlocksOutToAHostCache) {
  if (!testing::HasCudaDevice()) GTEST_SKIP() << "no CUDA device";
  std::mt19937 rng(6);
  std::vector<std::vector<uint32_t>> gpu_host, cpu_cache;
  for (int64_t t = 0; t < kTensors; ++t) {
    gpu_host.push_back(RandomWords(rng));
    cpu_cache.push_back(RandomWords(rng));
  }
  const std::vector<int32_t> pairs = {6, 0, 1, 4};
  std::vector<std::vector<uint32_t>> expected = cpu_cache;
  std::vector<const void*> src;
  std::vector<void*> dst;
  for (int64_t t = 0; t < kTensors; ++t) {
    src.push_back(gpu_host[t].data());
    dst.push_back(expected[t].data());
  }
  ASSERT_TRUE(CopyBlocks({.src = src.data(),
                          .dst = dst.data(),
                          .num_tensors = kTensors,
                          .block_bytes = kBlockBytes,
                          .num_src_blocks = kBlocks,
                          .num_dst_blocks = kBlocks,
                          .block_pairs = pairs.data(),
                          .num_pairs = 2})
                  .ok());

  std::vector<DeviceArray<uint32_t>> device;
  for (const auto& h : gpu_host) device.emplace_back(h);
  std::vector<const void*> dsrc;
  std::vector<void*> ddst;
  for (int64_t t = 0; t < kTensors; ++t) {
    dsrc.push_back(device[t].get());
    ddst.push_back(cpu_cache[t].data());  // host memory: a swap out
  }
  const absl::Status s = CopyBlocks({.src = dsrc.data(),
                                     .dst = ddst.data(),
                                     .num_tensors = kTensors,
                                     .block_bytes = kBlockBytes,
                                     .num_src_blocks = kBlocks,
                                     .num_dst_blocks = kBlocks,
                                     .block_pairs = pairs.data(),
                                     .num_pairs = 2,
                                     .device = Device::kCuda});
  ASSERT_TRUE(s.ok()) << s;
  ASSERT_TRUE(cuda::Synchronize().ok());
  for (int64_t t = 0; t < kTensors; ++t) testing::ExpectSameBits(cpu_cache[t], expected[t]);
}

}  // namespace
}  // namespace pagoda::kernels
