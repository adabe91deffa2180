// Safetensors files: a validating reader over a memory map, a writer, and a checkpoint that spans
// the shards of a Hugging Face model directory.
//
// Layout: 8-byte little-endian header length N, N bytes of JSON
// {name: {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, "__metadata__": {...}},
// then the data section that the offsets index. Model files are untrusted input: every field is
// checked at Open, and errors name the file and the tensor or field.
//
//   ASSIGN_OR_RETURN(auto checkpoint, SafetensorsCheckpoint::Open("/models/smollm2"));
//   const TensorInfo* embed = checkpoint->Find("model.embed_tokens.weight");
//   std::vector<float> values(embed->num_elements());
//   RETURN_IF_ERROR(ConvertToFloat(*embed, values));
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/file_util.h"

namespace pagoda {

enum class SafetensorsDType { kBool, kU8, kI8, kI16, kI32, kI64, kF16, kBF16, kF32, kF64 };

/// "F32", "BF16", ... as written in the header.
std::string_view SafetensorsDTypeName(SafetensorsDType dtype);
/// Bytes per element.
size_t SafetensorsDTypeSize(SafetensorsDType dtype);

struct TensorInfo {
  std::string name;
  SafetensorsDType dtype = SafetensorsDType::kF32;
  std::vector<int64_t> shape;
  std::span<const std::byte> data;  // inside the file's memory map; may be unaligned

  /// Product of the dims (validated not to overflow at Open).
  int64_t num_elements() const;
};

/// One .safetensors file, memory-mapped; TensorInfo::data points into the map.
class SafetensorsFile {
 public:
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);

  /// nullptr when absent.
  const TensorInfo* Find(std::string_view name) const;
  /// Sorted names.
  std::vector<std::string> TensorNames() const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& path() const { return file_.path(); }

 private:
  explicit SafetensorsFile(MappedFile file) : file_(std::move(file)) {}
  absl::Status Parse();

  MappedFile file_;
  absl::flat_hash_map<std::string, TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

/// Converts an F32/F16/BF16 tensor to fp32; `out` must hold exactly num_elements() floats.
absl::Status ConvertToFloat(const TensorInfo& tensor, std::span<float> out);

/// Scalar conversions (IEEE binary16 with subnormals/inf/nan; bfloat16 = top 16 bits of fp32).
float HalfToFloat(uint16_t bits);
uint16_t FloatToHalf(float value);  // round to nearest even
float BFloat16ToFloat(uint16_t bits);
uint16_t FloatToBFloat16(float value);  // round to nearest even, NaN stays NaN

struct TensorToWrite {
  std::string name;
  SafetensorsDType dtype = SafetensorsDType::kF32;
  std::vector<int64_t> shape;
  /// Values converted to `dtype` (F32/F16/BF16) ...
  std::span<const float> values;
  /// ... or, when non-empty, the stored bytes verbatim (any dtype; for tests and pass-through).
  std::span<const std::byte> raw_bytes;
};

/// Writes a safetensors file (atomically). The element count must match the shape.
absl::Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                              const std::map<std::string, std::string>& metadata = {});

/// The tensors of a model directory: DIR/model.safetensors, or else the shards named in
/// DIR/model.safetensors.index.json ({"weight_map": {tensor: file}}). Open checks that every
/// shard exists and holds the tensors mapped to it, and that no tensor appears twice.
class SafetensorsCheckpoint {
 public:
  static absl::StatusOr<std::unique_ptr<SafetensorsCheckpoint>> Open(const std::string& dir);

  /// nullptr when absent.
  const TensorInfo* Find(std::string_view name) const;
  /// The path of the file that holds `name` ("" when absent): for error messages.
  const std::string& FileOf(std::string_view name) const;
  /// Sorted names of every tensor in every file.
  std::vector<std::string> TensorNames() const;
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }
  const std::string& dir() const { return dir_; }

 private:
  struct Location {
    const SafetensorsFile* file;
    const TensorInfo* info;
  };
  absl::Status AddFile(std::unique_ptr<SafetensorsFile> file);

  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  absl::flat_hash_map<std::string, Location> tensors_;
};

}  // namespace pagoda
