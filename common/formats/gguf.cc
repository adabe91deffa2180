#include "common/formats/gguf.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace pagoda {
namespace {

static_assert(std::endian::native == std::endian::little,
              "the GGUF reader loads little-endian fields with memcpy");

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr int kNumValueTypes = 13;
constexpr uint64_t kDefaultAlignment = 32;
// The smallest encodings of a metadata entry (empty key, type, u8 value) and of a tensor info
// (empty name, one dim, type, offset): counts are checked against the bytes that remain.
constexpr uint64_t kMinEntryBytes = 8 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;

// Bytes of a scalar value of each type, indexed by GgufType; 0 for string and array.
constexpr std::array<uint64_t, kNumValueTypes> kScalarBytes = {1, 1, 2, 2, 4, 4, 4,
                                                               1, 0, 0, 8, 8, 8};
constexpr std::array<std::string_view, kNumValueTypes> kTypeNames = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"};

// absl::StrCat takes absl::string_view, which is not std::string_view in the packaged abseil.
absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

bool IsValueType(GgufType type) { return static_cast<uint32_t>(type) < kNumValueTypes; }
uint64_t ScalarBytes(GgufType type) {
  return IsValueType(type) ? kScalarBytes[static_cast<uint32_t>(type)] : 0;
}

absl::Status WithContext(const absl::Status& status, absl::string_view context) {
  return absl::Status(status.code(), absl::StrCat(context, ": ", status.message()));
}

std::string KeyLabel(std::string_view key) {
  return absl::StrCat("metadata key \"", absl::CHexEscape(Av(key)), "\"");
}
std::string TensorLabel(std::string_view name) {
  return absl::StrCat("tensor \"", absl::CHexEscape(Av(name)), "\"");
}

// Sequential little-endian reads; each is bounds-checked first. Errors say what was read, where,
// and where the bytes end; callers prefix the file and the field.
class Reader {
 public:
  explicit Reader(std::span<const std::byte> bytes) : bytes_(bytes) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return bytes_.size() - pos_; }

  absl::Status Need(uint64_t n, absl::string_view what) const {
    if (n <= remaining()) return absl::OkStatus();
    return absl::DataLossError(absl::StrCat(what, " needs ", n, " bytes at offset ", pos_,
                                            " but the file ends at ", bytes_.size(),
                                            " (truncated or corrupt)"));
  }
  // The next `n` bytes; Need(n) must have passed.
  std::span<const std::byte> Take(uint64_t n) {
    std::span<const std::byte> out = bytes_.subspan(pos_, n);
    pos_ += n;
    return out;
  }
  // The bytes from `begin` to the current position.
  std::span<const std::byte> Since(uint64_t begin) const {
    return bytes_.subspan(begin, pos_ - begin);
  }
  template <typename T>
  absl::StatusOr<T> Read(absl::string_view what) {
    RETURN_IF_ERROR(Need(sizeof(T), what));
    T value;
    std::memcpy(&value, Take(sizeof(T)).data(), sizeof(T));
    return value;
  }
  absl::StatusOr<std::string_view> String(absl::string_view what) {
    ASSIGN_OR_RETURN(uint64_t length, Read<uint64_t>(what));
    if (length > remaining()) {
      return absl::DataLossError(absl::StrCat(what, " ", length, " at offset ", pos_ - 8,
                                              " runs past the end of the file at ", bytes_.size(),
                                              " (truncated or corrupt)"));
    }
    const std::span<const std::byte> text = Take(length);
    return std::string_view(reinterpret_cast<const char*>(text.data()), text.size());
  }

 private:
  std::span<const std::byte> bytes_;
  uint64_t pos_ = 0;
};

absl::StatusOr<GgufType> ReadType(Reader& reader, absl::string_view what) {
  ASSIGN_OR_RETURN(uint32_t raw, reader.Read<uint32_t>(what));
  if (raw >= kNumValueTypes) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " ", raw, " is not a GGUF value type (0 to ", kNumValueTypes - 1, ")"));
  }
  return static_cast<GgufType>(raw);
}

// A scalar of `type` from its little-endian bytes at `p`.
GgufValue DecodeScalar(GgufType type, const std::byte* p) {
  GgufValue value;
  value.type = type;
  std::memcpy(&value.bits, p, ScalarBytes(type));
  return value;
}

// Reads and validates one value of `type`; `depth` counts the arrays that hold it.
absl::StatusOr<GgufValue> ReadValue(Reader& reader, GgufType type, int depth) {
  if (!IsValueType(type)) {  // only a hand-made GgufValue gets here: ReadType checks the file's
    return absl::InvalidArgumentError(
        absl::StrCat("value type ", static_cast<uint32_t>(type), " is not a GGUF value type"));
  }
  if (const uint64_t size = ScalarBytes(type); size > 0) {
    RETURN_IF_ERROR(reader.Need(size, absl::StrCat(Av(GgufTypeName(type)), " value")));
    GgufValue value = DecodeScalar(type, reader.Take(size).data());
    if (type == GgufType::kBool && value.bits > 1) {
      return absl::InvalidArgumentError(absl::StrCat("bool value is ", value.bits, ", not 0 or 1"));
    }
    return value;
  }
  GgufValue value;
  value.type = type;
  if (type == GgufType::kString) {
    ASSIGN_OR_RETURN(value.string, reader.String("string length"));
    return value;
  }
  if (depth >= kGgufMaxArrayDepth) {
    return absl::InvalidArgumentError(
        absl::StrCat("arrays nest deeper than ", kGgufMaxArrayDepth, " levels"));
  }
  ASSIGN_OR_RETURN(value.element_type, ReadType(reader, "array element type"));
  ASSIGN_OR_RETURN(value.count, reader.Read<uint64_t>("array count"));
  const uint64_t begin = reader.pos();
  if (const uint64_t size = ScalarBytes(value.element_type); size > 0) {
    if (value.count > reader.remaining() / size) {
      return absl::DataLossError(absl::StrCat(
          "array of ", value.count, " ", Av(GgufTypeName(value.element_type)), " at offset ", begin,
          " runs past the end of the file (", reader.remaining(), " bytes remain)"));
    }
    value.elements = reader.Take(value.count * size);
    if (value.element_type == GgufType::kBool) {
      for (uint64_t i = 0; i < value.count; ++i) {
        const auto b = static_cast<uint8_t>(value.elements[i]);
        if (b > 1) {
          return absl::InvalidArgumentError(
              absl::StrCat("element ", i, ": bool value is ", b, ", not 0 or 1"));
        }
      }
    }
    return value;
  }
  // Strings and arrays: each element takes at least a length or an array header.
  const uint64_t min_size = value.element_type == GgufType::kString ? 8 : 4 + 8;
  if (value.count > reader.remaining() / min_size) {
    return absl::DataLossError(absl::StrCat(
        "array of ", value.count, " ", Av(GgufTypeName(value.element_type)), " at offset ", begin,
        " needs at least ", min_size, " bytes per element, more than the ", reader.remaining(),
        " bytes that remain (truncated or corrupt)"));
  }
  for (uint64_t i = 0; i < value.count; ++i) {
    absl::StatusOr<GgufValue> element = ReadValue(reader, value.element_type, depth + 1);
    if (!element.ok()) return WithContext(element.status(), absl::StrCat("element ", i));
  }
  value.elements = reader.Since(begin);
  return value;
}

absl::Status TooManyError(uint64_t count, absl::string_view what, uint64_t min_bytes,
                          uint64_t remaining) {
  return absl::DataLossError(absl::StrCat(count, " ", what, " need at least ", min_bytes,
                                          " bytes each, more than the ", remaining,
                                          " bytes that remain (truncated or corrupt)"));
}

std::string SupportedTensorTypes() {
  std::vector<std::string> names;
  for (int i = 0; i < kNumDTypes; ++i) {
    names.emplace_back(Traits(static_cast<DType>(i)).ggml_name);
  }
  return absl::StrJoin(names, ", ");
}

std::string DescribeValue(const GgufValue& value) {
  if (value.type != GgufType::kArray) return std::string(GgufTypeName(value.type));
  return absl::StrCat("an array of ", Av(GgufTypeName(value.element_type)));
}

std::string JoinTypes(std::initializer_list<GgufType> types) {
  std::vector<std::string> names;
  for (GgufType type : types) names.emplace_back(GgufTypeName(type));
  return names.size() == 1 ? names[0] : absl::StrCat("one of ", absl::StrJoin(names, ", "));
}

}  // namespace

std::string_view GgufTypeName(GgufType type) {
  const auto index = static_cast<uint32_t>(type);
  return index < kNumValueTypes ? kTypeNames[index] : std::string_view("unknown");
}

// ---------------------------------------------------------------------------------------------
// GgufValue, GgufTensor

std::optional<uint64_t> GgufValue::AsUnsigned() const {
  switch (type) {
    case GgufType::kU8:
    case GgufType::kU16:
    case GgufType::kU32:
    case GgufType::kU64:
      return bits;
    default:
      return std::nullopt;
  }
}

std::optional<int64_t> GgufValue::AsSigned() const {
  switch (type) {
    case GgufType::kI8:
      return static_cast<int8_t>(static_cast<uint8_t>(bits));
    case GgufType::kI16:
      return static_cast<int16_t>(static_cast<uint16_t>(bits));
    case GgufType::kI32:
      return static_cast<int32_t>(static_cast<uint32_t>(bits));
    case GgufType::kI64:
      return static_cast<int64_t>(bits);
    default:
      return std::nullopt;
  }
}

std::optional<double> GgufValue::AsFloat() const {
  if (type == GgufType::kF32) {
    float f;
    const auto raw = static_cast<uint32_t>(bits);
    std::memcpy(&f, &raw, sizeof(f));
    return f;
  }
  if (type == GgufType::kF64) {
    double d;
    std::memcpy(&d, &bits, sizeof(d));
    return d;
  }
  return std::nullopt;
}

std::vector<GgufValue> GgufValue::Elements() const {
  std::vector<GgufValue> out;
  if (type != GgufType::kArray) return out;
  Reader reader(elements);
  out.reserve(std::min<uint64_t>(count, elements.size()));
  for (uint64_t i = 0; i < count; ++i) {
    // Validated at Open (at its true depth), so depth 1 cannot trip the nesting bound here; a
    // hand-made value that does not hold `count` elements just ends early.
    absl::StatusOr<GgufValue> element = ReadValue(reader, element_type, 1);
    if (!element.ok()) break;
    out.push_back(*element);
  }
  return out;
}

int64_t GgufTensor::num_elements() const {
  int64_t n = 1;
  for (int64_t dim : shape) n *= dim;
  return n;
}

// ---------------------------------------------------------------------------------------------
// GgufFile: parsing

absl::StatusOr<std::unique_ptr<GgufFile>> GgufFile::Open(const std::string& path) {
  ASSIGN_OR_RETURN(MappedFile mapped, MappedFile::Open(path));
  const std::span<const std::byte> bytes = mapped.bytes();
  std::unique_ptr<GgufFile> file(new GgufFile(std::move(mapped), bytes, path));
  RETURN_IF_ERROR(file->ParseAll());
  return file;
}

absl::StatusOr<std::unique_ptr<GgufFile>> GgufFile::Parse(std::span<const std::byte> bytes,
                                                          std::string source) {
  std::unique_ptr<GgufFile> file(new GgufFile(std::nullopt, bytes, std::move(source)));
  RETURN_IF_ERROR(file->ParseAll());
  return file;
}

absl::Status GgufFile::ParseAll() {
  const std::string& src = source_;
  Reader reader(bytes_);
  auto fail = [&src](const absl::Status& status, absl::string_view field) {
    return WithContext(status, absl::StrCat(src, ": ", field));
  };

  // Header.
  absl::StatusOr<uint32_t> magic = reader.Read<uint32_t>("the field");
  if (!magic.ok()) return fail(magic.status(), "magic");
  if (*magic != kMagic) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: not a GGUF file: it starts with bytes %02x %02x %02x %02x, not "
        "\"GGUF\"",
        src, *magic & 0xff, (*magic >> 8) & 0xff, (*magic >> 16) & 0xff, *magic >> 24));
  }
  absl::StatusOr<uint32_t> version = reader.Read<uint32_t>("the field");
  if (!version.ok()) return fail(version.status(), "version");
  version_ = *version;
  if (version_ == 1) {
    return absl::UnimplementedError(
        absl::StrCat(src,
                     ": GGUF version 1 is not supported (supported: 2, 3); convert the "
                     "model again with a current llama.cpp"));
  }
  if (version_ == 0x02000000 || version_ == 0x03000000) {
    return absl::UnimplementedError(absl::StrCat(src, ": big-endian GGUF (version ", version_ >> 24,
                                                 ") is not supported; use a little-endian file"));
  }
  if (version_ != 2 && version_ != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat(src, ": GGUF version ", version_, " is not supported (supported: 2, 3)"));
  }
  absl::StatusOr<uint64_t> tensor_count = reader.Read<uint64_t>("the field");
  if (!tensor_count.ok()) return fail(tensor_count.status(), "tensor count");
  absl::StatusOr<uint64_t> metadata_count = reader.Read<uint64_t>("the field");
  if (!metadata_count.ok()) return fail(metadata_count.status(), "metadata count");

  // Metadata. A count the remaining bytes cannot hold is refused before anything is reserved.
  if (*metadata_count > reader.remaining() / kMinEntryBytes) {
    return fail(TooManyError(*metadata_count, "entries", kMinEntryBytes, reader.remaining()),
                "metadata count");
  }
  metadata_.reserve(*metadata_count);
  for (uint64_t i = 0; i < *metadata_count; ++i) {
    absl::StatusOr<std::string_view> key = reader.String("key length");
    if (!key.ok()) {
      return fail(key.status(), absl::StrCat("metadata entry ", i, " of ", *metadata_count));
    }
    absl::StatusOr<GgufType> type = ReadType(reader, "value type");
    if (!type.ok()) return fail(type.status(), KeyLabel(*key));
    absl::StatusOr<GgufValue> value = ReadValue(reader, *type, 0);
    if (!value.ok()) return fail(value.status(), KeyLabel(*key));
    const auto [it, inserted] =
        metadata_index_.emplace(absl::string_view(key->data(), key->size()), metadata_.size());
    if (!inserted) {
      return absl::InvalidArgumentError(absl::StrCat(src, ": ", KeyLabel(*key),
                                                     " appears twice (metadata entries ",
                                                     it->second, " and ", i, ")"));
    }
    metadata_.push_back({*key, *value});
  }
  if (const GgufValue* alignment = FindMetadata("general.alignment")) {
    if (alignment->type != GgufType::kU32) {
      return absl::InvalidArgumentError(absl::StrCat(src, ": ", KeyLabel("general.alignment"),
                                                     " is ", DescribeValue(*alignment),
                                                     ", expected u32"));
    }
    if (alignment->bits == 0 || (alignment->bits & (alignment->bits - 1)) != 0) {
      return absl::InvalidArgumentError(absl::StrCat(src, ": ", KeyLabel("general.alignment"),
                                                     " is ", alignment->bits,
                                                     ", not a power of two"));
    }
    alignment_ = alignment->bits;
  } else {
    alignment_ = kDefaultAlignment;
  }

  // Tensor infos; as with metadata, the count is bounded by the bytes that remain.
  if (*tensor_count > reader.remaining() / kMinTensorInfoBytes) {
    return fail(
        TooManyError(*tensor_count, "tensor infos", kMinTensorInfoBytes, reader.remaining()),
        "tensor count");
  }
  tensors_.reserve(*tensor_count);
  std::vector<uint64_t> tensor_bytes;
  for (uint64_t i = 0; i < *tensor_count; ++i) {
    absl::StatusOr<std::string_view> name = reader.String("name length");
    if (!name.ok()) {
      return fail(name.status(), absl::StrCat("tensor info ", i, " of ", *tensor_count));
    }
    const std::string label = TensorLabel(*name);
    absl::StatusOr<uint32_t> num_dims = reader.Read<uint32_t>("dim count");
    if (!num_dims.ok()) return fail(num_dims.status(), label);
    if (*num_dims == 0 || *num_dims > static_cast<uint32_t>(kGgufMaxDims)) {
      return absl::InvalidArgumentError(absl::StrCat(src, ": ", label, ": has ", *num_dims,
                                                     " dims (GGML tensors have 1 to ", kGgufMaxDims,
                                                     ")"));
    }
    std::array<int64_t, kGgufMaxDims> dims{};  // GGUF order: fastest-varying first
    int64_t num_elements = 1;
    for (uint32_t d = 0; d < *num_dims; ++d) {
      absl::StatusOr<uint64_t> dim = reader.Read<uint64_t>("dim");
      if (!dim.ok()) return fail(dim.status(), label);
      if (*dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
          __builtin_mul_overflow(num_elements, static_cast<int64_t>(*dim), &num_elements)) {
        return absl::InvalidArgumentError(absl::StrCat(src, ": ", label, ": dim ", d, " (", *dim,
                                                       ") overflows the element count"));
      }
      dims[d] = static_cast<int64_t>(*dim);
    }
    absl::StatusOr<uint32_t> ggml_type = reader.Read<uint32_t>("type");
    if (!ggml_type.ok()) return fail(ggml_type.status(), label);
    const std::optional<DType> dtype = DTypeFromGgmlType(*ggml_type);
    if (!dtype) {
      const std::string_view ggml_name = GgmlTypeName(*ggml_type);
      if (ggml_name == "unknown") {
        return absl::InvalidArgumentError(
            absl::StrCat(src, ": ", label, ": type id ", *ggml_type, " is not a GGML type"));
      }
      return absl::UnimplementedError(
          absl::StrCat(src, ": ", label, ": GGML type ", Av(ggml_name), " (id ", *ggml_type,
                       ") is not supported (supported: ", SupportedTensorTypes(), ")"));
    }
    absl::StatusOr<int64_t> row_bytes = RowBytes(*dtype, dims[0]);
    if (!row_bytes.ok()) {
      return fail(row_bytes.status(), absl::StrCat(label, ": a row (dim 0)"));
    }
    int64_t num_rows = 1, num_bytes = 0;
    bool overflow = false;  // possible when dim 0 is 0 and the element count therefore is too
    for (uint32_t d = 1; d < *num_dims; ++d) {
      overflow = overflow || __builtin_mul_overflow(num_rows, dims[d], &num_rows);
    }
    if (overflow || __builtin_mul_overflow(*row_bytes, num_rows, &num_bytes)) {
      return absl::InvalidArgumentError(
          absl::StrCat(src, ": ", label, ": the tensor's byte count overflows"));
    }
    absl::StatusOr<uint64_t> offset = reader.Read<uint64_t>("data offset");
    if (!offset.ok()) return fail(offset.status(), label);

    GgufTensor tensor;
    tensor.name = *name;
    tensor.dtype = *dtype;
    tensor.shape.assign(dims.rend() - *num_dims, dims.rend());
    tensor.offset = *offset;
    const auto [it, inserted] =
        tensor_index_.emplace(absl::string_view(name->data(), name->size()), tensors_.size());
    if (!inserted) {
      return absl::InvalidArgumentError(absl::StrCat(
          src, ": ", label, " appears twice (tensor infos ", it->second, " and ", i, ")"));
    }
    tensors_.push_back(std::move(tensor));
    tensor_bytes.push_back(static_cast<uint64_t>(num_bytes));
  }

  // The data section starts at the next multiple of the alignment; pos() <= the file size, which
  // is far from overflowing when rounded up to a u32 alignment.
  const uint64_t data_start = (reader.pos() + alignment_ - 1) / alignment_ * alignment_;
  const std::span<const std::byte> data =
      data_start <= bytes_.size() ? bytes_.subspan(data_start) : std::span<const std::byte>();
  for (size_t i = 0; i < tensors_.size(); ++i) {
    GgufTensor& tensor = tensors_[i];
    const uint64_t num_bytes = tensor_bytes[i];
    if (tensor.offset % alignment_ != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(src, ": ", TensorLabel(tensor.name), ": data offset ", tensor.offset,
                       " is not a multiple of the alignment ", alignment_));
    }
    if (tensor.offset > data.size() || num_bytes > data.size() - tensor.offset) {
      return absl::DataLossError(absl::StrCat(
          src, ": ", TensorLabel(tensor.name), ": ", num_bytes, " bytes of data at offset ",
          tensor.offset, " run past the end of the data section (", data.size(),
          " bytes from file offset ", data_start, "; truncated or corrupt)"));
    }
    tensor.data = data.subspan(tensor.offset, num_bytes);
  }

  // Tensors must not share bytes (a wrong shape shows up here when its data runs into the next).
  std::vector<size_t> order;
  for (size_t i = 0; i < tensors_.size(); ++i) {
    if (!tensors_[i].data.empty()) order.push_back(i);
  }
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return tensors_[a].offset < tensors_[b].offset; });
  for (size_t k = 1; k < order.size(); ++k) {
    const GgufTensor& prev = tensors_[order[k - 1]];
    const GgufTensor& next = tensors_[order[k]];
    if (next.offset < prev.offset + prev.data.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(src, ": ", TensorLabel(prev.name), " (", prev.data.size(),
                       " bytes at data offset ", prev.offset, ") overlaps ", TensorLabel(next.name),
                       " (at data offset ", next.offset, ")"));
    }
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// GgufFile: lookups

const GgufValue* GgufFile::FindMetadata(std::string_view key) const {
  auto it = metadata_index_.find(absl::string_view(key.data(), key.size()));
  return it == metadata_index_.end() ? nullptr : &metadata_[it->second].value;
}

const GgufTensor* GgufFile::FindTensor(std::string_view name) const {
  auto it = tensor_index_.find(absl::string_view(name.data(), name.size()));
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

absl::StatusOr<const GgufValue*> GgufFile::GetTyped(std::string_view key,
                                                    std::initializer_list<GgufType> types) const {
  const GgufValue* value = FindMetadata(key);
  if (value == nullptr) {
    return absl::NotFoundError(absl::StrCat(source_, ": ", KeyLabel(key), " is absent"));
  }
  for (GgufType type : types) {
    if (value->type == type) return value;
  }
  return absl::InvalidArgumentError(absl::StrCat(source_, ": ", KeyLabel(key), " is ",
                                                 DescribeValue(*value), ", expected ",
                                                 JoinTypes(types)));
}

absl::StatusOr<const GgufValue*> GgufFile::GetArray(
    std::string_view key, std::initializer_list<GgufType> element_types) const {
  ASSIGN_OR_RETURN(const GgufValue* value, GetTyped(key, {GgufType::kArray}));
  for (GgufType type : element_types) {
    if (value->element_type == type) return value;
  }
  return absl::InvalidArgumentError(absl::StrCat(source_, ": ", KeyLabel(key), " is ",
                                                 DescribeValue(*value), ", expected an array of ",
                                                 JoinTypes(element_types)));
}

absl::StatusOr<std::string_view> GgufFile::GetString(std::string_view key) const {
  ASSIGN_OR_RETURN(const GgufValue* value, GetTyped(key, {GgufType::kString}));
  return value->string;
}

absl::StatusOr<uint32_t> GgufFile::GetU32(std::string_view key) const {
  ASSIGN_OR_RETURN(const GgufValue* value,
                   GetTyped(key, {GgufType::kU32, GgufType::kU16, GgufType::kU8}));
  return static_cast<uint32_t>(value->bits);
}

absl::StatusOr<int32_t> GgufFile::GetI32(std::string_view key) const {
  ASSIGN_OR_RETURN(const GgufValue* value,
                   GetTyped(key, {GgufType::kI32, GgufType::kI16, GgufType::kI8, GgufType::kU16,
                                  GgufType::kU8}));
  return static_cast<int32_t>(value->AsSigned().value_or(static_cast<int64_t>(value->bits)));
}

absl::StatusOr<uint64_t> GgufFile::GetU64(std::string_view key) const {
  ASSIGN_OR_RETURN(const GgufValue* value,
                   GetTyped(key, {GgufType::kU64, GgufType::kU32, GgufType::kU16, GgufType::kU8}));
  return value->bits;
}

absl::StatusOr<int64_t> GgufFile::GetI64(std::string_view key) const {
  ASSIGN_OR_RETURN(const GgufValue* value,
                   GetTyped(key, {GgufType::kI64, GgufType::kI32, GgufType::kI16, GgufType::kI8,
                                  GgufType::kU32, GgufType::kU16, GgufType::kU8}));
  return value->AsSigned().value_or(static_cast<int64_t>(value->bits));
}

absl::StatusOr<float> GgufFile::GetF32(std::string_view key) const {
  ASSIGN_OR_RETURN(const GgufValue* value, GetTyped(key, {GgufType::kF32}));
  return static_cast<float>(*value->AsFloat());
}

absl::StatusOr<double> GgufFile::GetF64(std::string_view key) const {
  ASSIGN_OR_RETURN(const GgufValue* value, GetTyped(key, {GgufType::kF64, GgufType::kF32}));
  return *value->AsFloat();
}

absl::StatusOr<bool> GgufFile::GetBool(std::string_view key) const {
  ASSIGN_OR_RETURN(const GgufValue* value, GetTyped(key, {GgufType::kBool}));
  return value->bits != 0;
}

absl::StatusOr<std::vector<std::string_view>> GgufFile::GetStringArray(std::string_view key) const {
  ASSIGN_OR_RETURN(const GgufValue* value, GetArray(key, {GgufType::kString}));
  std::vector<std::string_view> out;
  out.reserve(std::min<uint64_t>(value->count, value->elements.size() / 8));
  Reader reader(value->elements);
  for (uint64_t i = 0; i < value->count; ++i) {
    absl::StatusOr<std::string_view> s = reader.String("string length");
    if (!s.ok()) break;  // validated at Open
    out.push_back(*s);
  }
  return out;
}

absl::StatusOr<std::vector<int32_t>> GgufFile::GetI32Array(std::string_view key) const {
  ASSIGN_OR_RETURN(const GgufValue* value,
                   GetArray(key, {GgufType::kI32, GgufType::kI16, GgufType::kI8, GgufType::kU16,
                                  GgufType::kU8}));
  const uint64_t size = ScalarBytes(value->element_type);
  std::vector<int32_t> out(value->elements.size() / size);
  for (size_t i = 0; i < out.size(); ++i) {
    const GgufValue element = DecodeScalar(value->element_type, value->elements.data() + i * size);
    out[i] = static_cast<int32_t>(element.AsSigned().value_or(static_cast<int64_t>(element.bits)));
  }
  return out;
}

absl::StatusOr<std::vector<float>> GgufFile::GetF32Array(std::string_view key) const {
  ASSIGN_OR_RETURN(const GgufValue* value, GetArray(key, {GgufType::kF32}));
  std::vector<float> out(value->elements.size() / sizeof(float));
  if (!out.empty()) std::memcpy(out.data(), value->elements.data(), out.size() * sizeof(float));
  return out;
}

}  // namespace pagoda
