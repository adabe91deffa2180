// Tensor: a typed buffer — dtype, shape and device — that the model layer keeps its weights (and
// the kernels their operands' facts) in. Storage is either owned (allocated here, 64-byte aligned,
// zero-filled) or a read-only view into memory someone else owns, such as a memory-mapped GGUF
// file, which the tensor keeps alive through a shared owner. Copies share the storage (like
// torch.Tensor); a weight tied to another (an LM head that is the embedding) is the same storage.
//
// Rows: a tensor of shape [rows, cols] (or [n] as one row) stores each row contiguously in
// RowBytes(dtype, cols) bytes, back to back — the layout the GEMM and the embedding kernels read,
// for the float types and the GGUF block formats alike.
//
// Device::kCuda tensors hold device memory (cudaMalloc, freed with the last copy of the tensor):
// their data() pointers are for kernels with `.device = Device::kCuda`, never to be read on the
// host; CopyTo() moves a tensor between host and device. In a build without CUDA, a kCuda request
// is FailedPrecondition.
//
//   ASSIGN_OR_RETURN(Tensor w, Tensor::Zeros(DType::kBF16, {out_features, in_features}));
//   std::memcpy(w.mutable_row(3), src_row, w.row_bytes());
//   ASSIGN_OR_RETURN(Tensor view, Tensor::View(DType::kQ4_K, {576, 1536}, bytes, gguf_owner));
//   std::vector<float> values = TensorToFloats(w);   // dequantized, for tests and references
//   ASSIGN_OR_RETURN(Tensor on_gpu, w.CopyTo(Device::kCuda));
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "common/dtype.h"
#include "kernels/device.h"

namespace pagoda {

class Tensor {
 public:
  /// An empty tensor: no storage, no dims.
  Tensor() = default;

  /// Owned storage for `shape` (at most 2 dims, each >= 0; the last a whole number of dtype's
  /// blocks) on `device`, zero-filled (zero bytes are 0.0 in every DType). ResourceExhausted
  /// naming the bytes when the allocation fails, InvalidArgument for a bad shape,
  /// FailedPrecondition for kCuda without a CUDA build, driver or device.
  static absl::StatusOr<Tensor> Zeros(DType dtype, std::vector<int64_t> shape,
                                      Device device = Device::kCpu);
  /// A read-only view of `data` (which must hold ByteSize(dtype, shape) bytes, aligned for the
  /// dtype's scalars) kept alive by `owner`.
  static absl::StatusOr<Tensor> View(DType dtype, std::vector<int64_t> shape, const void* data,
                                     std::shared_ptr<const void> owner);
  /// An owned fp32 tensor holding `values` (shape's product must equal values.size()).
  static Tensor FromFloats(std::vector<int64_t> shape, std::span<const float> values);

  /// An owned copy of this tensor on `device` (host -> device, device -> host, or the same device);
  /// errors as Zeros(). An empty tensor copies to an empty tensor.
  absl::StatusOr<Tensor> CopyTo(Device device) const;

  /// The bytes of `shape` in `dtype`, or InvalidArgument (a bad shape, a row that is not whole
  /// blocks, an overflow).
  static absl::StatusOr<int64_t> ByteSize(DType dtype, const std::vector<int64_t>& shape);

  bool empty() const { return data_ == nullptr; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t dim(size_t i) const { return shape_[i]; }
  int64_t num_elements() const;
  int64_t num_bytes() const { return num_bytes_; }
  /// Rows and columns: [rows, cols] for a matrix, 1 x n for a vector, 0 x 0 when empty.
  int64_t rows() const;
  int64_t cols() const;
  int64_t row_bytes() const;
  /// False for views: their bytes belong to someone else and are read-only.
  bool owns_storage() const { return owned_; }

  const void* data() const { return data_; }
  /// Owned tensors only (nullptr for views).
  void* mutable_data() { return owned_ ? data_ : nullptr; }
  const std::byte* row(int64_t r) const { return data_ + r * row_bytes(); }
  std::byte* mutable_row(int64_t r) { return owned_ ? data_ + r * row_bytes() : nullptr; }
  /// The elements as T (the caller knows the dtype: float for F32).
  template <typename T>
  const T* data_as() const {
    return reinterpret_cast<const T*>(data_);
  }
  template <typename T>
  T* mutable_data_as() {
    return reinterpret_cast<T*>(mutable_data());
  }

 private:
  Tensor(DType dtype, std::vector<int64_t> shape, Device device, std::shared_ptr<const void> owner,
         std::byte* data, int64_t num_bytes, bool owned)
      : dtype_(dtype),
        shape_(std::move(shape)),
        device_(device),
        owner_(std::move(owner)),
        data_(data),
        num_bytes_(num_bytes),
        owned_(owned) {}

  DType dtype_ = DType::kF32;
  std::vector<int64_t> shape_;
  Device device_ = Device::kCpu;
  std::shared_ptr<const void> owner_;  // frees owned storage / keeps a view's bytes alive
  std::byte* data_ = nullptr;
  int64_t num_bytes_ = 0;
  bool owned_ = false;
};

/// The tensor's values in fp32 (dequantized: Dequantize's values), row-major; a kCuda tensor is
/// copied to the host first (CHECK-fails if that copy fails).
std::vector<float> TensorToFloats(const Tensor& tensor);

}  // namespace pagoda
