// GGUF files (llama.cpp's model format, versions 2 and 3, little-endian): a validating reader over
// a memory map. Metadata values and tensor data are views into the mapped bytes.
//
// Layout: "GGUF", u32 version, u64 tensor count, u64 metadata count; the metadata entries (a
// string key, a u32 value type, the value; strings are a u64 length and bytes, arrays a u32
// element type, a u64 count and the elements, possibly arrays themselves); the tensor infos (name,
// u32 dim count, u64 dims fastest-varying first, u32 GGML type, u64 offset into the data
// section); padding to `general.alignment` (default 32); the data section.
//
// Model files are untrusted input: every count, length, offset, dtype and shape is bounds- and
// overflow-checked at Open, nothing is allocated from a size read in the file without a bound
// derived from the file's size, and every error names the file, the field (a metadata key or a
// tensor name) and the problem. Truncation errors are kDataLoss; malformed values
// kInvalidArgument; well-formed files Pagoda cannot use (version 1, big-endian, GGML types
// outside DType) kUnimplemented.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> gguf, GgufFile::Open("smollm2.Q4_1.gguf"));
//   ASSIGN_OR_RETURN(uint32_t layers, gguf->GetU32("llama.block_count"));
//   ASSIGN_OR_RETURN(std::vector<std::string_view> tokens,
//                    gguf->GetStringArray("tokenizer.ggml.tokens"));
//   const GgufTensor* embed = gguf->FindTensor("token_embd.weight");  // shape {vocab, hidden}
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/dtype.h"
#include "common/file_util.h"

namespace pagoda {

/// Metadata value types, with the ids GGUF stores.
enum class GgufType : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};

/// "u8", "i32", "f32", "bool", "string", "array", ...
std::string_view GgufTypeName(GgufType type);

/// Arrays nest at most this deep (an array of scalars is depth 1, an array of those depth 2).
inline constexpr int kGgufMaxArrayDepth = 8;
/// GGML tensors have at most 4 dims.
inline constexpr int kGgufMaxDims = 4;

/// One metadata value, validated at Open; strings and array elements point into the file's bytes.
struct GgufValue {
  GgufType type = GgufType::kU8;
  uint64_t bits = 0;        // numbers and bool: the value's little-endian bytes, zero-extended
  std::string_view string;  // kString
  GgufType element_type = GgufType::kU8;  // kArray
  uint64_t count = 0;                     // kArray: number of elements
  std::span<const std::byte> elements;    // kArray: the encoded elements

  /// The value of an unsigned integer (u8/u16/u32/u64); nullopt for other types.
  std::optional<uint64_t> AsUnsigned() const;
  /// The value of a signed integer (i8/i16/i32/i64); nullopt for other types.
  std::optional<int64_t> AsSigned() const;
  /// The value of an f32 or f64; nullopt for other types.
  std::optional<double> AsFloat() const;
  /// The elements of an array (one level), decoded from `elements`; empty for non-arrays. One
  /// GgufValue per element: for long arrays of numbers or strings prefer GgufFile's typed array
  /// getters.
  std::vector<GgufValue> Elements() const;
};

struct GgufTensor {
  std::string_view name;
  DType dtype = DType::kF32;
  /// Slowest-varying dim first (Hugging Face / NumPy order): GGUF's dims reversed, so a matrix
  /// is {rows, cols} with each row contiguous, e.g. token_embd.weight is {vocab, hidden}.
  std::vector<int64_t> shape;
  uint64_t offset = 0;              // from the start of the data section
  std::span<const std::byte> data;  // inside the file; RowBytes(dtype, cols) * rows bytes

  /// Product of the dims (validated not to overflow at Open).
  int64_t num_elements() const;
};

struct GgufMetadataEntry {
  std::string_view key;
  GgufValue value;
};

/// A parsed GGUF file. Open maps a file; Parse reads bytes the caller keeps alive (the entry
/// point for fuzzing). Typed getters answer NotFound for an absent key and InvalidArgument for a
/// value of another type; they widen where no value can change (GetU32 reads u8/u16/u32,
/// GetI32 reads i8/i16/i32/u8/u16, GetU64 any unsigned, GetI64 any signed and u8/u16/u32,
/// GetF64 f32/f64).
class GgufFile {
 public:
  static absl::StatusOr<std::unique_ptr<GgufFile>> Open(const std::string& path);
  /// `source` names the bytes in error messages (a path, "<fuzz input>").
  static absl::StatusOr<std::unique_ptr<GgufFile>> Parse(std::span<const std::byte> bytes,
                                                         std::string source);

  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& source() const { return source_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }

  /// Metadata in file order.
  const std::vector<GgufMetadataEntry>& metadata() const { return metadata_; }
  /// nullptr when `key` is absent.
  const GgufValue* FindMetadata(std::string_view key) const;

  absl::StatusOr<std::string_view> GetString(std::string_view key) const;
  absl::StatusOr<uint32_t> GetU32(std::string_view key) const;
  absl::StatusOr<int32_t> GetI32(std::string_view key) const;
  absl::StatusOr<uint64_t> GetU64(std::string_view key) const;
  absl::StatusOr<int64_t> GetI64(std::string_view key) const;
  absl::StatusOr<float> GetF32(std::string_view key) const;
  absl::StatusOr<double> GetF64(std::string_view key) const;
  absl::StatusOr<bool> GetBool(std::string_view key) const;
  absl::StatusOr<std::vector<std::string_view>> GetStringArray(std::string_view key) const;
  /// Elements of type i32 (or i8/i16/u8/u16).
  absl::StatusOr<std::vector<int32_t>> GetI32Array(std::string_view key) const;
  absl::StatusOr<std::vector<float>> GetF32Array(std::string_view key) const;

  /// Tensors in file order.
  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  /// nullptr when `name` is absent.
  const GgufTensor* FindTensor(std::string_view name) const;

 private:
  GgufFile(std::optional<MappedFile> file, std::span<const std::byte> bytes, std::string source)
      : file_(std::move(file)), bytes_(bytes), source_(std::move(source)) {}
  absl::Status ParseAll();
  // The value of `key` when it has one of `types`; errors name the key and what was expected.
  absl::StatusOr<const GgufValue*> GetTyped(std::string_view key,
                                            std::initializer_list<GgufType> types) const;
  absl::StatusOr<const GgufValue*> GetArray(std::string_view key,
                                            std::initializer_list<GgufType> element_types) const;

  std::optional<MappedFile> file_;  // empty for Parse: the caller owns the bytes
  std::span<const std::byte> bytes_;
  std::string source_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  std::vector<GgufMetadataEntry> metadata_;
  absl::flat_hash_map<absl::string_view, size_t> metadata_index_;
  std::vector<GgufTensor> tensors_;
  absl::flat_hash_map<absl::string_view, size_t> tensor_index_;
};

}  // namespace pagoda
