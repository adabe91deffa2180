#include "worker/cpu_weight_placement.h"

#include <bit>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/dequantize.h"
#include "kernels/gemm.h"
#include "kernels/weight_buffer.h"
#include "worker/models/layers.h"

namespace pagoda {
namespace {

std::vector<float> Random(int64_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = uniform(rng);
  return v;
}

// A [rows, cols] weight of random values stored in dtype (F32, F16, Q8_0 or Q4_1).
Tensor RandomWeight(DType dtype, int64_t rows, int64_t cols, std::mt19937& rng) {
  const std::vector<float> values = Random(rows * cols, rng);
  Tensor t = Tensor::Zeros(dtype, {rows, cols}).value();
  if (dtype == DType::kQ4_1) {
    // Quantize has no Q4_1: random nibbles, and d and m (the blocks' float16 fields) in +-1/8.
    auto* bytes = static_cast<uint8_t*>(t.mutable_data());
    std::uniform_int_distribution<int> byte(0, 255);
    for (int64_t i = 0; i < t.num_bytes(); ++i) bytes[i] = static_cast<uint8_t>(byte(rng));
    for (int64_t block = 0; block < t.num_bytes(); block += 20) {
      const float fields[2] = {values[block / 20] / 8, values[block / 20 + 1] / 8};
      EXPECT_TRUE(
          kernels::Quantize(
              {.dtype = DType::kF16, .src = fields, .dst = bytes + block, .num_elements = 2})
              .ok());
    }
    return t;
  }
  EXPECT_TRUE(kernels::Quantize({.dtype = dtype,
                                 .src = values.data(),
                                 .dst = t.mutable_data(),
                                 .num_elements = rows * cols})
                  .ok());
  return t;
}

// What the model computes from these weights: the fused projection and the tied LM head.
std::vector<float> Outputs(const ModelWeights& w, const std::vector<float>& x, int64_t rows) {
  const LinearWeight& qkv = w.layers[0].qkv_proj;
  const Tensor& head = w.lm_head_or_embedding();
  std::vector<float> out(static_cast<size_t>(rows * (qkv.out_features() + head.rows())));
  EXPECT_TRUE(Linear(x.data(), rows, qkv, Tensor(), out.data()).ok());
  EXPECT_TRUE(kernels::Gemm({.a = x.data(),
                             .b = head.data(),
                             .b_dtype = head.dtype(),
                             .b_packed = w.packed_lm_head,
                             .c = out.data() + rows * qkv.out_features(),
                             .m = rows,
                             .n = head.rows(),
                             .k = head.cols()})
                  .ok());
  return out;
}

bool Inside(const void* p, const ModelWeights& w) {
  const auto* b = reinterpret_cast<const std::byte*>(p);
  return w.cpu_buffer != nullptr && b >= w.cpu_buffer.get();
}

// Placement moves the GEMMs' weights into the huge-page buffer and packs the Q8_0 and Q4_1 ones
// where this CPU has a packed layout, and nothing the model computes changes by a bit.
TEST(PlaceWeightsForCpu, MovesAndPacksWithoutChangingTheOutputs) {
  std::mt19937 rng(3);
  constexpr int64_t kHidden = 96;
  ModelWeights w;
  w.layers.resize(1);
  w.layers[0].qkv_proj.parts.push_back(RandomWeight(DType::kQ8_0, 37, kHidden, rng));
  w.layers[0].qkv_proj.parts.push_back(RandomWeight(DType::kF16, 5, kHidden, rng));
  w.layers[0].qkv_proj.parts.push_back(RandomWeight(DType::kQ4_1, 21, kHidden, rng));
  w.embed_tokens = RandomWeight(DType::kQ8_0, 40, kHidden, rng);  // tied: the LM head
  const std::vector<float> x = Random(3 * kHidden, rng);
  const std::vector<float> before_1 = Outputs(w, x, 1), before_3 = Outputs(w, x, 3);
  const std::vector<float> q8_values = TensorToFloats(w.layers[0].qkv_proj.parts[0]);
  const std::vector<float> f16_values = TensorToFloats(w.layers[0].qkv_proj.parts[1]);
  const std::vector<float> q4_values = TensorToFloats(w.layers[0].qkv_proj.parts[2]);
  const std::vector<float> embedding = TensorToFloats(w.embed_tokens);
  const void* f16_before = w.layers[0].qkv_proj.parts[1].data();
  const int64_t stored_bytes = w.num_bytes();

  ASSERT_TRUE(PlaceWeightsForCpu(w).ok());

  const LinearWeight& qkv = w.layers[0].qkv_proj;
  const bool packs = kernels::PackedGemmWeightBytes(DType::kQ8_0, 37, kHidden) > 0;
  ASSERT_EQ(qkv.packed.size(), 3u);
  EXPECT_EQ(qkv.packed[0] != nullptr, packs);
  EXPECT_EQ(qkv.packed[1], nullptr);  // F16 has no packed layout
  EXPECT_EQ(qkv.packed[2] != nullptr, packs);
  EXPECT_EQ(w.packed_lm_head != nullptr, packs);
  // The packed forms are counted: the worker reports num_bytes() as the rank's weight bytes.
  const int64_t packed_bytes = kernels::PackedGemmWeightBytes(DType::kQ8_0, 37, kHidden) +
                               kernels::PackedGemmWeightBytes(DType::kQ4_1, 21, kHidden) +
                               kernels::PackedGemmWeightBytes(DType::kQ8_0, 40, kHidden);
  EXPECT_EQ(w.packed_bytes, packed_bytes);
  EXPECT_EQ(w.num_bytes(), stored_bytes + packed_bytes);
  if (packs) {
    EXPECT_GT(packed_bytes, 0);
    EXPECT_TRUE(Inside(qkv.packed[0], w));
    EXPECT_TRUE(Inside(qkv.packed[2], w));
  }
  if (kernels::WeightBuffersUseHugePages()) {
    EXPECT_NE(qkv.parts[1].data(), f16_before);
    EXPECT_TRUE(Inside(qkv.parts[1].data(), w));
    EXPECT_EQ(reinterpret_cast<uintptr_t>(w.cpu_buffer.get()) % (2 << 20), 0u);
  }
  // The stored forms keep their values (the embedding rows, TensorToFloats read them).
  EXPECT_EQ(TensorToFloats(qkv.parts[0]), q8_values);
  EXPECT_EQ(TensorToFloats(qkv.parts[1]), f16_values);
  EXPECT_EQ(TensorToFloats(qkv.parts[2]), q4_values);
  EXPECT_EQ(TensorToFloats(w.embed_tokens), embedding);
  for (const auto& [rows, before] : {std::pair{1, &before_1}, std::pair{3, &before_3}}) {
    const std::vector<float> after = Outputs(w, x, rows);
    ASSERT_EQ(after.size(), before->size());
    for (size_t i = 0; i < after.size(); ++i) {
      ASSERT_EQ(std::bit_cast<uint32_t>(after[i]), std::bit_cast<uint32_t>((*before)[i]))
          << "rows " << rows << " output " << i;
    }
  }
}

TEST(PlaceWeightsForCpu, LeavesWeightsWithNothingToPlaceAlone) {
  ModelWeights empty;
  ASSERT_TRUE(PlaceWeightsForCpu(empty).ok());
  EXPECT_EQ(empty.cpu_buffer, nullptr);
}

TEST(AllocateWeightBuffer, GivesZeroedMemoryAlignedToAHugePage) {
  const int64_t bytes = (3 << 20) + 5;
  absl::StatusOr<std::shared_ptr<std::byte>> buffer = kernels::AllocateWeightBuffer(bytes);
  ASSERT_TRUE(buffer.ok()) << buffer.status();
  EXPECT_EQ(reinterpret_cast<uintptr_t>(buffer->get()) % (2 << 20), 0u);
  for (int64_t i = 0; i < bytes; i += 4093) EXPECT_EQ(buffer->get()[i], std::byte{0});
  std::memset(buffer->get(), 1, static_cast<size_t>(bytes));  // all of it writable
  EXPECT_EQ(kernels::AllocateWeightBuffer(0).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace pagoda
