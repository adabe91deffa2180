#include "kernels/tensor.h"

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/dequantize.h"

namespace pagoda {
namespace {

using ::testing::Each;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(Tensor, ZerosIsOwnedAlignedAndZeroFilled) {
  absl::StatusOr<Tensor> t = Tensor::Zeros(DType::kQ4_K, {3, 512});
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_FALSE(t->empty());
  EXPECT_TRUE(t->owns_storage());
  EXPECT_EQ(t->device(), Device::kCpu);
  EXPECT_EQ(t->dtype(), DType::kQ4_K);
  EXPECT_THAT(t->shape(), ElementsAre(3, 512));
  EXPECT_EQ(t->rows(), 3);
  EXPECT_EQ(t->cols(), 512);
  EXPECT_EQ(t->num_elements(), 3 * 512);
  EXPECT_EQ(t->row_bytes(), 2 * 144);  // two 256-element blocks of 144 bytes
  EXPECT_EQ(t->num_bytes(), 3 * 2 * 144);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t->data()) % 64, 0u);
  EXPECT_EQ(t->row(2), static_cast<const std::byte*>(t->data()) + 2 * 288);
  EXPECT_THAT(TensorToFloats(*t), Each(0.0f));  // zero bytes are 0.0 in every DType

  absl::StatusOr<Tensor> v = Tensor::Zeros(DType::kF32, {5});
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->rows(), 1);
  EXPECT_EQ(v->cols(), 5);
  absl::StatusOr<Tensor> cache = Tensor::Zeros(DType::kBF16, {4, 16, 2, 8});
  ASSERT_TRUE(cache.ok());
  EXPECT_EQ(cache->rows(), 4 * 16 * 2);
  EXPECT_EQ(cache->num_bytes(), 4 * 16 * 2 * 8 * 2);
  EXPECT_TRUE(Tensor().empty());
}

TEST(Tensor, RejectsShapesThatAreNotWholeBlocksOrOverflow) {
  EXPECT_THAT(std::string(Tensor::Zeros(DType::kQ8_0, {2, 48}).status().message()),
              HasSubstr("not a whole number of 32-element blocks"));
  EXPECT_THAT(std::string(Tensor::Zeros(DType::kF32, {2, -1}).status().message()),
              HasSubstr("negative"));
  EXPECT_THAT(std::string(Tensor::Zeros(DType::kF32, {}).status().message()),
              HasSubstr("1 to 4 dims"));
  EXPECT_THAT(std::string(Tensor::Zeros(DType::kF32, {1, 1, 1, 1, 1}).status().message()),
              HasSubstr("1 to 4 dims"));
  EXPECT_THAT(
      std::string(
          Tensor::Zeros(DType::kF32, {int64_t{1} << 40, int64_t{1} << 40}).status().message()),
      HasSubstr("overflows"));
}

TEST(Tensor, ViewKeepsItsOwnerAliveAndIsReadOnly) {
  auto bytes = std::make_shared<std::vector<uint16_t>>(std::vector<uint16_t>{0x3f80, 0xc000});
  std::weak_ptr<std::vector<uint16_t>> watch = bytes;
  absl::StatusOr<Tensor> view = Tensor::View(DType::kBF16, {2}, bytes->data(), bytes);
  ASSERT_TRUE(view.ok()) << view.status();
  bytes.reset();
  EXPECT_FALSE(watch.expired());
  EXPECT_FALSE(view->owns_storage());
  EXPECT_EQ(view->mutable_data(), nullptr);
  EXPECT_THAT(TensorToFloats(*view), ElementsAre(1.0f, -2.0f));
  Tensor copy = *view;  // shares the storage
  EXPECT_EQ(copy.data(), view->data());
  *view = Tensor();
  EXPECT_FALSE(watch.expired());
  copy = Tensor();
  EXPECT_TRUE(watch.expired());
}

TEST(Tensor, ViewRejectsMisalignedFloatsAndNull) {
  auto bytes = std::make_shared<std::vector<float>>(4);
  const void* odd = reinterpret_cast<const std::byte*>(bytes->data()) + 2;
  EXPECT_THAT(std::string(Tensor::View(DType::kF32, {1}, odd, bytes).status().message()),
              HasSubstr("aligned"));
  EXPECT_TRUE(Tensor::View(DType::kBF16, {1}, odd, bytes).ok());
  EXPECT_FALSE(Tensor::View(DType::kF32, {1}, nullptr, bytes).ok());
}

TEST(Tensor, FromFloatsRoundTripsAndCopiesShareStorage) {
  const std::vector<float> values = {1, 2, 3, 4, 5, 6};
  Tensor t = Tensor::FromFloats({2, 3}, values);
  EXPECT_EQ(TensorToFloats(t), values);
  Tensor shared = t;
  t.mutable_data_as<float>()[0] = 9;
  EXPECT_EQ(shared.data_as<float>()[0], 9);
}

}  // namespace
}  // namespace pagoda
