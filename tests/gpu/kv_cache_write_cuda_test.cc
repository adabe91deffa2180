// kernels/cuda/kv_cache_write.cu against its CPU twin for fp32 and bf16 caches: random odd
// shapes, strided keys and values, a -1 slot, and caches poisoned with NaN (slots not written
// must stay NaN). Bound: exact (a copy, or the same round-to-nearest-even bf16 bits).
// Needs a CUDA device; skips without one.
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cuda/device_memory.h"
#include "kernels/kv_cache_write.h"
#include "tests/gpu/cuda_test_util.h"

namespace pagoda {
// gtest prints a DType parameter by its name (found by argument-dependent lookup).
void PrintTo(DType dtype, std::ostream* os) { *os << DTypeName(dtype); }
}  // namespace pagoda

namespace pagoda::kernels {
namespace {

using testing::DeviceArray;
using testing::kNaN;

class KvCacheWriteCuda : public ::testing::TestWithParam<DType> {};

TEST_P(KvCacheWriteCuda, MatchesCpuBitForBit) {
  if (!testing::HasCudaDevice()) GTEST_SKIP() << "no CUDA device";
  const DType dtype = GetParam();
  constexpr int64_t kTokens = 19;
  constexpr int64_t kKvHeads = 3;
  constexpr int64_t kHeadDim = 37;
  constexpr int64_t kBlockSize = 5;
  constexpr int64_t kNumBlocks = 11;
  constexpr int64_t kWidth = kKvHeads * kHeadDim;
  constexpr int64_t kKeyStride = kWidth + 7;  // keys inside a wider qkv row
  constexpr int64_t kValueStride = kWidth + 2;
  std::mt19937 rng(dtype == DType::kF32 ? 1 : 2);
  const std::vector<float> key = testing::RandomFloats(kTokens * kKeyStride, rng);
  const std::vector<float> value = testing::RandomFloats(kTokens * kValueStride, rng);
  // Distinct random slots, one of them -1 (skipped).
  std::vector<int64_t> slots(kNumBlocks * kBlockSize);
  std::iota(slots.begin(), slots.end(), 0);
  std::shuffle(slots.begin(), slots.end(), rng);
  slots.resize(kTokens);
  slots[4] = -1;

  // The caches in 32-bit words, NaN-poisoned; a bf16 cache uses half the bytes of each.
  const int64_t cache_words = kNumBlocks * kBlockSize * kWidth;
  std::vector<float> expected_k(cache_words, kNaN), expected_v(cache_words, kNaN);
  KvCacheWriteParams params{.key = key.data(),
                            .value = value.data(),
                            .key_cache = expected_k.data(),
                            .value_cache = expected_v.data(),
                            .cache_dtype = dtype,
                            .slot_mapping = slots.data(),
                            .num_tokens = kTokens,
                            .num_kv_heads = kKvHeads,
                            .head_dim = kHeadDim,
                            .block_size = kBlockSize,
                            .num_blocks = kNumBlocks,
                            .key_stride = kKeyStride,
                            .value_stride = kValueStride};
  ASSERT_TRUE(WriteKvCache(params).ok());

  DeviceArray<float> dkey(key), dvalue(value);
  DeviceArray<float> dk_cache(std::vector<float>(cache_words, kNaN));
  DeviceArray<float> dv_cache(std::vector<float>(cache_words, kNaN));
  DeviceArray<int64_t> dslots(slots);
  params.key = dkey.get();
  params.value = dvalue.get();
  params.key_cache = dk_cache.get();
  params.value_cache = dv_cache.get();
  params.slot_mapping = dslots.get();
  params.slots_checked = true;
  params.device = Device::kCuda;
  const absl::Status s = WriteKvCache(params);
  ASSERT_TRUE(s.ok()) << s;
  ASSERT_TRUE(cuda::Synchronize().ok());
  testing::ExpectSameBits(dk_cache.Host(), expected_k);
  testing::ExpectSameBits(dv_cache.Host(), expected_v);
}

INSTANTIATE_TEST_SUITE_P(CacheDTypes, KvCacheWriteCuda,
                         ::testing::Values(DType::kF32, DType::kBF16),
                         [](const ::testing::TestParamInfo<DType>& info) {
                           return std::string(DTypeName(info.param));
                         });

TEST(KvCacheWriteCudaParams, DeviceSlotsMustBeCheckedByTheCaller) {
  // Validation only: no device needed.
  float key[2] = {}, cache[4] = {};
  const int64_t slots[1] = {0};
  const absl::Status s = WriteKvCache({.key = key,
                                       .value = key,
                                       .key_cache = cache,
                                       .value_cache = cache + 2,
                                       .slot_mapping = slots,
                                       .num_tokens = 1,
                                       .num_kv_heads = 1,
                                       .head_dim = 2,
                                       .block_size = 1,
                                       .num_blocks = 1,
                                       .key_stride = 2,
                                       .value_stride = 2,
                                       .device = Device::kCuda});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
}

}  // namespace
}  // namespace pagoda::kernels
