// kernels/cuda/embedding.cu against its CPU twin for F32, F16 and BF16 tables: random odd-sized
// tables, output poisoned with NaN. Bound: exact (a copy, or a widening that is exact).
// Needs a CUDA device; skips without one.
#include <cstdint>
#include <cstring>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cuda/device_memory.h"
#include "kernels/embedding.h"
#include "tests/gpu/cuda_test_util.h"

namespace pagoda {
// gtest prints a DType parameter by its name (found by argument-dependent lookup).
void PrintTo(DType dtype, std::ostream* os) { *os << DTypeName(dtype); }
}  // namespace pagoda

namespace pagoda::kernels {
namespace {

using testing::DeviceArray;
using testing::kNaN;

class EmbeddingCuda : public ::testing::TestWithParam<DType> {};

TEST_P(EmbeddingCuda, MatchesCpuBitForBit) {
  if (!testing::HasCudaDevice()) GTEST_SKIP() << "no CUDA device";
  const DType dtype = GetParam();
  constexpr int64_t kVocab = 1009;
  constexpr int64_t kHidden = 335;
  constexpr int64_t kTokens = 13;
  std::mt19937 rng(static_cast<uint32_t>(dtype) + 7);
  // Random 16-bit patterns below the exponent of Inf/NaN make finite F16 and BF16 tables.
  const int64_t elements = kVocab * kHidden * (dtype == DType::kF32 ? 2 : 1);
  std::vector<uint16_t> table(elements);
  std::uniform_int_distribution<int> bits(0, 0x7bff);
  for (uint16_t& b : table) b = static_cast<uint16_t>(bits(rng) | (rng() & 1 ? 0x8000 : 0));
  if (dtype == DType::kF32) {  // a float table: pairs of halves would give odd values; use floats
    const std::vector<float> f = testing::RandomFloats(kVocab * kHidden, rng);
    std::memcpy(table.data(), f.data(), f.size() * sizeof(float));
  }
  std::vector<int32_t> ids(kTokens);
  std::uniform_int_distribution<int32_t> id(0, kVocab - 1);
  for (int32_t& i : ids) i = id(rng);
  ids[0] = 0;
  ids[1] = kVocab - 1;

  std::vector<float> expected(kTokens * kHidden, kNaN);
  ASSERT_TRUE(Embedding({.token_ids = ids.data(),
                         .table = table.data(),
                         .table_dtype = dtype,
                         .output = expected.data(),
                         .num_tokens = kTokens,
                         .vocab_size = kVocab,
                         .hidden_size = kHidden})
                  .ok());
  DeviceArray<uint16_t> dtable(table);
  DeviceArray<int32_t> dids(ids);
  DeviceArray<float> dout(std::vector<float>(kTokens * kHidden, kNaN));
  const absl::Status s = Embedding({.token_ids = dids.get(),
                                    .table = dtable.get(),
                                    .table_dtype = dtype,
                                    .output = dout.get(),
                                    .num_tokens = kTokens,
                                    .vocab_size = kVocab,
                                    .hidden_size = kHidden,
                                    .token_ids_checked = true,
                                    .device = Device::kCuda});
  ASSERT_TRUE(s.ok()) << s;
  ASSERT_TRUE(cuda::Synchronize().ok());
  testing::ExpectSameBits(dout.Host(), expected);
}

INSTANTIATE_TEST_SUITE_P(Tables, EmbeddingCuda,
                         ::testing::Values(DType::kF32, DType::kF16, DType::kBF16),
                         [](const ::testing::TestParamInfo<DType>& info) {
                           return std::string(DTypeName(info.param));
                         });

TEST(EmbeddingCudaParams, DeviceIdsMustBeCheckedByTheCaller) {
  // Validation only: no device needed.
  const float table[4] = {};
  const int32_t ids[1] = {0};
  float out[2];
  const absl::Status s = Embedding({.token_ids = ids,
                                    .table = table,
                                    .output = out,
                                    .num_tokens = 1,
                                    .vocab_size = 2,
                                    .hidden_size = 2,
                                    .device = Device::kCuda});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
}

}  // namespace
}  // namespace pagoda::kernels
