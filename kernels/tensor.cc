#include "kernels/tensor.h"

#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/check.h"
#include "common/status_macros.h"
#include "kernels/cuda/device_memory.h"
#include "kernels/dequantize.h"

namespace pagoda {
namespace {

constexpr size_t kAlignment = 64;
constexpr size_t kMaxDims = 4;

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// The alignment a dtype's scalars need when the kernels read them in place: 4 bytes for fp32,
// 2 for the 16-bit floats and the block formats (whose fields are read bytewise or as u16).
size_t ScalarAlignment(DType dtype) { return dtype == DType::kF32 ? 4 : 1; }

struct AlignedFree {
  void operator()(const void* p) const { std::free(const_cast<void*>(p)); }
};

}  // namespace

absl::StatusOr<int64_t> Tensor::ByteSize(DType dtype, const std::vector<int64_t>& shape) {
  if (shape.empty() || shape.size() > kMaxDims) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor shape ", ShapeString(shape), " must have 1 to ", kMaxDims, " dims"));
  }
  int64_t rows = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor shape ", ShapeString(shape), " has a negative dim"));
    }
    if (i + 1 < shape.size()) {
      if (shape[i] != 0 && rows > std::numeric_limits<int64_t>::max() / shape[i]) {
        return absl::InvalidArgumentError(
            absl::StrCat("tensor shape ", ShapeString(shape), " overflows"));
      }
      rows *= shape[i];
    }
  }
  ASSIGN_OR_RETURN(const int64_t row_bytes, RowBytes(dtype, shape.back()));
  if (row_bytes != 0 && rows > std::numeric_limits<int64_t>::max() / row_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor shape ", ShapeString(shape), " overflows a byte count"));
  }
  return rows * row_bytes;
}

absl::StatusOr<Tensor> Tensor::Zeros(DType dtype, std::vector<int64_t> shape, Device device) {
  ASSIGN_OR_RETURN(const int64_t bytes, ByteSize(dtype, shape));
  if (device == Device::kCuda) {
    absl::StatusOr<std::shared_ptr<void>> storage = kernels::cuda::AllocateZeroed(bytes);
    if (!storage.ok()) {
      const absl::Status& s = storage.status();
      return absl::Status(s.code(), absl::StrCat("cannot allocate ", bytes,
                                                 " bytes on the CUDA "
                                                 "device for a ",
                                                 std::string(DTypeName(dtype)), " tensor of shape ",
                                                 ShapeString(shape), ": ", s.message()));
    }
    auto* data = static_cast<std::byte*>(storage->get());
    return Tensor(dtype, std::move(shape), device, *std::move(storage), data, bytes,
                  /*owned=*/true);
  }
  // Round up to the alignment (aligned_alloc's contract) and allocate at least one line, so that
  // a zero-element tensor still has storage and is not empty().
  const size_t size = (static_cast<size_t>(bytes) + kAlignment - 1) / kAlignment * kAlignment;
  void* p = std::aligned_alloc(kAlignment, size == 0 ? kAlignment : size);
  if (p == nullptr) {
    return absl::ResourceExhaustedError(absl::StrCat("cannot allocate ", bytes, " bytes for a ",
                                                     std::string(DTypeName(dtype)),
                                                     " tensor of shape ", ShapeString(shape)));
  }
  std::memset(p, 0, size == 0 ? kAlignment : size);
  std::shared_ptr<const void> owner(p, AlignedFree());
  return Tensor(dtype, std::move(shape), device, std::move(owner), static_cast<std::byte*>(p),
                bytes, /*owned=*/true);
}

absl::StatusOr<Tensor> Tensor::View(DType dtype, std::vector<int64_t> shape, const void* data,
                                    std::shared_ptr<const void> owner) {
  ASSIGN_OR_RETURN(const int64_t bytes, ByteSize(dtype, shape));
  if (data == nullptr) return absl::InvalidArgumentError("tensor view of null data");
  if (reinterpret_cast<uintptr_t>(data) % ScalarAlignment(dtype) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("a ", std::string(DTypeName(dtype)),
                                                   " tensor view needs data aligned to ",
                                                   ScalarAlignment(dtype), " bytes"));
  }
  // Views are read-only: mutable_data() refuses them, so the const_cast never writes.
  return Tensor(dtype, std::move(shape), Device::kCpu, std::move(owner),
                static_cast<std::byte*>(const_cast<void*>(data)), bytes, /*owned=*/false);
}

absl::StatusOr<Tensor> Tensor::CopyTo(Device device) const {
  if (empty()) return Tensor();
  ASSIGN_OR_RETURN(Tensor copy, Zeros(dtype_, shape_, device));
  if (num_bytes_ == 0) return copy;
  if (device_ == Device::kCpu && device == Device::kCpu) {
    std::memcpy(copy.data_, data_, static_cast<size_t>(num_bytes_));
    return copy;
  }
  // One side is on the device, so this build has CUDA (Zeros or the source says so).
  RETURN_IF_ERROR(kernels::cuda::CopyBytes(copy.data_, data_, num_bytes_));
  return copy;
}

Tensor Tensor::FromFloats(std::vector<int64_t> shape, std::span<const float> values) {
  absl::StatusOr<Tensor> t = Zeros(DType::kF32, std::move(shape));
  PAGODA_CHECK(t.ok()) << "Tensor::FromFloats: " << t.status();
  PAGODA_CHECK(t->num_elements() == static_cast<int64_t>(values.size()))
      << "Tensor::FromFloats: " << values.size() << " values for " << t->num_elements()
      << " elements";
  if (!values.empty()) std::memcpy(t->mutable_data(), values.data(), values.size_bytes());
  return *std::move(t);
}

int64_t Tensor::num_elements() const {
  if (shape_.empty()) return 0;
  int64_t n = 1;
  for (int64_t d : shape_) n *= d;
  return n;
}

int64_t Tensor::rows() const {
  if (shape_.empty()) return 0;
  int64_t n = 1;
  for (size_t i = 0; i + 1 < shape_.size(); ++i) n *= shape_[i];
  return n;
}

int64_t Tensor::cols() const { return shape_.empty() ? 0 : shape_.back(); }

int64_t Tensor::row_bytes() const {
  if (shape_.empty()) return 0;
  const int64_t r = rows();
  return r == 0 ? 0 : num_bytes_ / r;
}

std::vector<float> TensorToFloats(const Tensor& tensor) {
  std::vector<float> out(static_cast<size_t>(tensor.num_elements()));
  if (out.empty()) return out;
  if (tensor.device() != Device::kCpu) {
    absl::StatusOr<Tensor> host = tensor.CopyTo(Device::kCpu);
    PAGODA_CHECK(host.ok()) << "TensorToFloats: " << host.status();
    return TensorToFloats(*host);
  }
  // Shapes were validated at construction, so this cannot fail.
  const absl::Status status = kernels::Dequantize({.dtype = tensor.dtype(),
                                                   .src = tensor.data(),
                                                   .dst = out.data(),
                                                   .num_elements = tensor.num_elements()});
  PAGODA_CHECK(status.ok()) << "TensorToFloats: " << status;
  return out;
}

}  // namespace pagoda
