#include "common/formats/safetensors.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/json_util.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace pagoda {
namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

struct DTypeEntry {
  const char* name;
  SafetensorsDType dtype;
  size_t size;
};
constexpr DTypeEntry kDTypes[] = {
    {"BOOL", SafetensorsDType::kBool, 1}, {"U8", SafetensorsDType::kU8, 1},
    {"I8", SafetensorsDType::kI8, 1},     {"I16", SafetensorsDType::kI16, 2},
    {"I32", SafetensorsDType::kI32, 4},   {"I64", SafetensorsDType::kI64, 8},
    {"F16", SafetensorsDType::kF16, 2},   {"BF16", SafetensorsDType::kBF16, 2},
    {"F32", SafetensorsDType::kF32, 4},   {"F64", SafetensorsDType::kF64, 8},
};

const DTypeEntry* FindDType(std::string_view name) {
  for (const DTypeEntry& entry : kDTypes) {
    if (name == entry.name) return &entry;
  }
  return nullptr;
}

const DTypeEntry& EntryOf(SafetensorsDType dtype) {
  for (const DTypeEntry& entry : kDTypes) {
    if (entry.dtype == dtype) return entry;
  }
  return kDTypes[0];  // unreachable: every enumerator is in the table
}

std::string SupportedDTypes() {
  std::vector<std::string> names;
  for (const DTypeEntry& entry : kDTypes) names.emplace_back(entry.name);
  return absl::StrJoin(names, ", ");
}

// A non-negative JSON integer that fits int64_t, or nullopt.
std::optional<int64_t> NonNegativeInt(const json& value) {
  if (value.is_number_unsigned()) {
    const uint64_t v = value.get<uint64_t>();
    if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(v);
  }
  if (value.is_number_integer()) {
    const int64_t v = value.get<int64_t>();
    if (v < 0) return std::nullopt;
    return v;
  }
  return std::nullopt;
}

uint16_t LoadU16(const std::byte* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

}  // namespace

std::string_view SafetensorsDTypeName(SafetensorsDType dtype) { return EntryOf(dtype).name; }
size_t SafetensorsDTypeSize(SafetensorsDType dtype) { return EntryOf(dtype).size; }

int64_t TensorInfo::num_elements() const {
  int64_t n = 1;
  for (int64_t dim : shape) n *= dim;
  return n;
}

float HalfToFloat(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1fu;
  uint32_t mantissa = bits & 0x3ffu;
  uint32_t out;
  if (exponent == 0x1f) {  // inf / nan (keep the payload, quiet bit included)
    out = sign | 0x7f800000u | (mantissa << 13);
  } else if (exponent != 0) {  // normal
    out = sign | ((exponent + 112) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {  // signed zero
    out = sign;
  } else {            // subnormal: value = mantissa * 2^-24; normalize it
    int32_t e = 113;  // 127 - 15 + 1
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      --e;
    }
    out = sign | (static_cast<uint32_t>(e) << 23) | ((mantissa & 0x3ffu) << 13);
  }
  float value;
  std::memcpy(&value, &out, sizeof(value));
  return value;
}

uint16_t FloatToHalf(float value) {
  uint32_t x;
  std::memcpy(&x, &value, sizeof(x));
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u) {  // inf or nan
    return static_cast<uint16_t>(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0u));
  }
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to inf
  if (abs < 0x38800000u) {  // below the smallest normal half (2^-14): subnormal or zero
    if (abs < 0x33000000u) return sign;  // below half the smallest subnormal (2^-25)
    const uint32_t exponent = abs >> 23;
    const uint32_t mantissa = (abs & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - exponent;  // 14..24
    uint32_t half = mantissa >> shift;
    const uint32_t rest = mantissa & ((1u << shift) - 1);
    const uint32_t halfway = 1u << (shift - 1);
    if (rest > halfway || (rest == halfway && (half & 1u))) ++half;
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t half = ((abs >> 23) - 112) << 10 | ((abs >> 13) & 0x3ffu);
  const uint32_t rest = abs & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) ++half;  // may carry into exponent
  return static_cast<uint16_t>(sign | half);
}

float BFloat16ToFloat(uint16_t bits) {
  const uint32_t x = static_cast<uint32_t>(bits) << 16;
  float value;
  std::memcpy(&value, &x, sizeof(value));
  return value;
}

uint16_t FloatToBFloat16(float value) {
  uint32_t x;
  std::memcpy(&x, &value, sizeof(x));
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);  // nan
  x += 0x7fffu + ((x >> 16) & 1u);
  return static_cast<uint16_t>(x >> 16);
}

absl::Status ConvertToFloat(const TensorInfo& tensor, std::span<float> out) {
  const int64_t n = tensor.num_elements();
  if (static_cast<int64_t>(out.size()) != n) {
    return absl::InvalidArgumentError(absl::StrCat("tensor ", tensor.name, ": has ", n,
                                                   " elements but the output holds ", out.size()));
  }
  const size_t element_size = SafetensorsDTypeSize(tensor.dtype);
  if (tensor.data.size() != static_cast<size_t>(n) * element_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor ", tensor.name, ": ", tensor.data.size(), " bytes of data for ", n,
                     " elements of ", std::string(SafetensorsDTypeName(tensor.dtype))));
  }
  const std::byte* src = tensor.data.data();
  switch (tensor.dtype) {
    case SafetensorsDType::kF32:
      if (n > 0) std::memcpy(out.data(), src, static_cast<size_t>(n) * sizeof(float));
      return absl::OkStatus();
    case SafetensorsDType::kF16:
      for (int64_t i = 0; i < n; ++i) out[i] = HalfToFloat(LoadU16(src + 2 * i));
      return absl::OkStatus();
    case SafetensorsDType::kBF16:
      for (int64_t i = 0; i < n; ++i) out[i] = BFloat16ToFloat(LoadU16(src + 2 * i));
      return absl::OkStatus();
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor ", tensor.name, ": dtype ", std::string(SafetensorsDTypeName(tensor.dtype)),
          " cannot be converted to float (supported: F32, F16, BF16)"));
  }
}

// ---------------------------------------------------------------------------------------------
// SafetensorsFile

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  ASSIGN_OR_RETURN(MappedFile mapped, MappedFile::Open(path));
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile(std::move(mapped)));
  RETURN_IF_ERROR(file->Parse());
  return file;
}

absl::Status SafetensorsFile::Parse() {
  const std::string& path = file_.path();
  const std::span<const std::byte> bytes = file_.bytes();
  if (bytes.size() < 8) {
    return absl::DataLossError(absl::StrCat(path, ": file is ", bytes.size(),
                                            " bytes, too short for the 8-byte header length"));
  }
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<uint8_t>(bytes[i]);
  if (header_len > kMaxHeaderBytes) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": header length ", header_len,
                                                   " exceeds the limit of ", kMaxHeaderBytes));
  }
  if (header_len > bytes.size() - 8) {
    return absl::DataLossError(absl::StrCat(path, ": header length ", header_len,
                                            " runs past the end of the file (", bytes.size(),
                                            " bytes); the file is truncated or not safetensors"));
  }
  const char* header_begin = reinterpret_cast<const char*>(bytes.data() + 8);
  absl::StatusOr<json> parsed = ParseJson(std::string_view(header_begin, header_len));
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": header ", parsed.status().message()));
  }
  const json& header = *parsed;
  if (!header.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": header is not a JSON object"));
  }
  const std::span<const std::byte> data = bytes.subspan(8 + header_len);

  struct Range {
    int64_t begin, end;
    std::string name;
  };
  std::vector<Range> ranges;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": __metadata__ is not an object"));
      }
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string()) {
          return absl::InvalidArgumentError(
              absl::StrCat(path, ": __metadata__ value of \"", key, "\" is not a string"));
        }
        metadata_[key] = value.get<std::string>();
      }
      continue;
    }
    const std::string where = absl::StrCat(path, ": tensor ", name);
    if (!entry.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": entry is not a JSON object"));
    }
    TensorInfo info;
    info.name = name;
    const auto dtype_it = entry.find("dtype");
    if (dtype_it == entry.end() || !dtype_it->is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": missing or non-string \"dtype\""));
    }
    const std::string& dtype_name = dtype_it->get_ref<const std::string&>();
    const DTypeEntry* dtype = FindDType(dtype_name);
    if (dtype == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": unsupported dtype \"", dtype_name,
                                                     "\" (supported: ", SupportedDTypes(), ")"));
    }
    info.dtype = dtype->dtype;

    const auto shape_it = entry.find("shape");
    if (shape_it == entry.end() || !shape_it->is_array()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": missing or non-array \"shape\""));
    }
    int64_t num_elements = 1;
    for (const json& dim_json : *shape_it) {
      const std::optional<int64_t> dim = NonNegativeInt(dim_json);
      if (!dim) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": shape ", shape_it->dump(),
                                                       " has a negative or non-integer dim"));
      }
      if (__builtin_mul_overflow(num_elements, *dim, &num_elements)) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": shape ", shape_it->dump(), " overflows the element count"));
      }
      info.shape.push_back(*dim);
    }
    int64_t num_bytes = 0;
    if (__builtin_mul_overflow(num_elements, static_cast<int64_t>(dtype->size), &num_bytes)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": shape ", shape_it->dump(), " overflows the byte count"));
    }

    const auto offsets_it = entry.find("data_offsets");
    if (offsets_it == entry.end() || !offsets_it->is_array() || offsets_it->size() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": \"data_offsets\" must be an array [begin, end]"));
    }
    const std::optional<int64_t> begin = NonNegativeInt((*offsets_it)[0]);
    const std::optional<int64_t> end = NonNegativeInt((*offsets_it)[1]);
    if (!begin || !end || *begin > *end) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": data_offsets ", offsets_it->dump(),
                                                     " are not integers with begin <= end"));
    }
    if (static_cast<uint64_t>(*end) > data.size()) {
      return absl::DataLossError(absl::StrCat(where, ": data_offsets ", offsets_it->dump(),
                                              " run past the data section (", data.size(),
                                              " bytes); the file is truncated"));
    }
    if (*end - *begin != num_bytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": data_offsets ", offsets_it->dump(), " span ", *end - *begin,
          " bytes but dtype ", dtype_name, " and shape ", shape_it->dump(), " need ", num_bytes));
    }
    info.data = data.subspan(static_cast<size_t>(*begin), static_cast<size_t>(num_bytes));
    tensors_[name] = std::move(info);
    if (num_bytes > 0) ranges.push_back({*begin, *end, name});
  }

  std::sort(ranges.begin(), ranges.end(),
            [](const Range& a, const Range& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].begin < ranges[i - 1].end) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": tensors ", ranges[i - 1].name,
                                                     " and ", ranges[i].name, " overlap"));
    }
  }
  return absl::OkStatus();
}

const TensorInfo* SafetensorsFile::Find(std::string_view name) const {
  auto it = tensors_.find(absl::string_view(name.data(), name.size()));
  return it == tensors_.end() ? nullptr : &it->second;
}

std::vector<std::string> SafetensorsFile::TensorNames() const {
  std::vector<std::string> names;
  names.reserve(tensors_.size());
  for (const auto& [name, info] : tensors_) names.push_back(name);
  std::sort(names.begin(), names.end());
  return names;
}

// ---------------------------------------------------------------------------------------------
// Writer

absl::Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                              const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<std::string> blobs;
  blobs.reserve(tensors.size());
  uint64_t offset = 0;
  for (const TensorToWrite& tensor : tensors) {
    const std::string where = absl::StrCat(path, ": tensor ", tensor.name);
    if (tensor.name == "__metadata__" || header.contains(tensor.name)) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": duplicate or reserved name"));
    }
    int64_t num_elements = 1;
    for (int64_t dim : tensor.shape) {
      if (dim < 0 || __builtin_mul_overflow(num_elements, dim, &num_elements)) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": invalid shape"));
      }
    }
    const size_t element_size = SafetensorsDTypeSize(tensor.dtype);
    std::string blob;
    if (!tensor.raw_bytes.empty()) {
      if (tensor.raw_bytes.size() != static_cast<size_t>(num_elements) * element_size) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": ", tensor.raw_bytes.size(), " raw bytes for ", num_elements,
                         " elements of ", std::string(SafetensorsDTypeName(tensor.dtype))));
      }
      blob.assign(reinterpret_cast<const char*>(tensor.raw_bytes.data()), tensor.raw_bytes.size());
    } else {
      if (static_cast<int64_t>(tensor.values.size()) != num_elements) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": ", tensor.values.size(),
                                                       " values for ", num_elements, " elements"));
      }
      blob.resize(static_cast<size_t>(num_elements) * element_size);
      for (int64_t i = 0; i < num_elements; ++i) {
        const float v = tensor.values[i];
        uint16_t h;
        switch (tensor.dtype) {
          case SafetensorsDType::kF32:
            std::memcpy(blob.data() + 4 * i, &v, 4);
            break;
          case SafetensorsDType::kF16:
            h = FloatToHalf(v);
            std::memcpy(blob.data() + 2 * i, &h, 2);
            break;
          case SafetensorsDType::kBF16:
            h = FloatToBFloat16(v);
            std::memcpy(blob.data() + 2 * i, &h, 2);
            break;
          default:
            return absl::InvalidArgumentError(
                absl::StrCat(where, ": float values can only be written as F32, F16 or BF16"));
        }
      }
    }
    header[tensor.name] = {{"dtype", std::string(SafetensorsDTypeName(tensor.dtype))},
                           {"shape", tensor.shape},
                           {"data_offsets", {offset, offset + blob.size()}}};
    offset += blob.size();
    blobs.push_back(std::move(blob));
  }
  std::string header_text = header.dump();
  // Pad with spaces so the data section starts 8-byte aligned, as the reference writer does.
  header_text.append((8 - header_text.size() % 8) % 8, ' ');
  std::string contents;
  contents.reserve(8 + header_text.size() + offset);
  const uint64_t header_len = header_text.size();
  for (int i = 0; i < 8; ++i) contents.push_back(static_cast<char>((header_len >> (8 * i)) & 0xff));
  contents += header_text;
  for (const std::string& blob : blobs) contents += blob;
  return WriteStringToFile(path, contents);
}

// ---------------------------------------------------------------------------------------------
// SafetensorsCheckpoint

absl::StatusOr<std::unique_ptr<SafetensorsCheckpoint>> SafetensorsCheckpoint::Open(
    const std::string& dir) {
  std::unique_ptr<SafetensorsCheckpoint> checkpoint(new SafetensorsCheckpoint());
  checkpoint->dir_ = dir;
  const std::string single = dir + "/model.safetensors";
  const std::string index_path = dir + "/model.safetensors.index.json";
  std::error_code ec;
  if (std::filesystem::exists(single, ec)) {
    ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file, SafetensorsFile::Open(single));
    RETURN_IF_ERROR(checkpoint->AddFile(std::move(file)));
    return checkpoint;
  }
  if (!std::filesystem::exists(index_path, ec)) {
    return absl::NotFoundError(absl::StrCat(dir, ": neither model.safetensors nor ",
                                            "model.safetensors.index.json exists"));
  }
  ASSIGN_OR_RETURN(std::string index_text, ReadFileToString(index_path));
  absl::StatusOr<json> parsed_index = ParseJson(index_text);
  if (!parsed_index.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(index_path, ": ", parsed_index.status().message()));
  }
  const json& index = *parsed_index;
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(index_path, ": expected an object with a \"weight_map\" object"));
  }
  std::map<std::string, std::vector<std::string>> tensors_by_shard;
  for (const auto& [tensor, shard] : index["weight_map"].items()) {
    if (!shard.is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(index_path, ": weight_map entry for ", tensor, " is not a file name"));
    }
    const std::string& shard_name = shard.get_ref<const std::string&>();
    const std::filesystem::path shard_path(shard_name);
    bool escapes = shard_name.empty() || shard_path.is_absolute();
    for (const auto& part : shard_path) escapes = escapes || part == "..";
    if (escapes) {
      return absl::InvalidArgumentError(absl::StrCat(index_path, ": weight_map entry for ", tensor,
                                                     " names \"", shard_name,
                                                     "\", not a file inside the model folder"));
    }
    tensors_by_shard[shard_name].push_back(tensor);
  }
  for (const auto& [shard_name, tensors] : tensors_by_shard) {
    const std::string shard_path = absl::StrCat(dir, "/", shard_name);
    absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open(shard_path);
    if (!file.ok()) {
      return absl::Status(file.status().code(),
                          absl::StrCat(index_path, ": shard ", shard_name, ": ",
                                       std::string(file.status().message())));
    }
    for (const std::string& tensor : tensors) {
      if ((*file)->Find(tensor) == nullptr) {
        return absl::NotFoundError(absl::StrCat(index_path, ": weight_map puts tensor ", tensor,
                                                " in ", shard_path, ", which does not hold it"));
      }
    }
    RETURN_IF_ERROR(checkpoint->AddFile(*std::move(file)));
  }
  return checkpoint;
}

absl::Status SafetensorsCheckpoint::AddFile(std::unique_ptr<SafetensorsFile> file) {
  for (const std::string& name : file->TensorNames()) {
    const TensorInfo* info = file->Find(name);
    auto [it, inserted] = tensors_.emplace(name, Location{file.get(), info});
    if (!inserted) {
      return absl::InvalidArgumentError(absl::StrCat(dir_, ": tensor ", name, " appears in both ",
                                                     it->second.file->path(), " and ",
                                                     file->path()));
    }
  }
  files_.push_back(std::move(file));
  return absl::OkStatus();
}

const TensorInfo* SafetensorsCheckpoint::Find(std::string_view name) const {
  auto it = tensors_.find(absl::string_view(name.data(), name.size()));
  return it == tensors_.end() ? nullptr : it->second.info;
}

const std::string& SafetensorsCheckpoint::FileOf(std::string_view name) const {
  static const std::string* const kEmpty = new std::string();
  auto it = tensors_.find(absl::string_view(name.data(), name.size()));
  return it == tensors_.end() ? *kEmpty : it->second.file->path();
}

std::vector<std::string> SafetensorsCheckpoint::TensorNames() const {
  std::vector<std::string> names;
  names.reserve(tensors_.size());
  for (const auto& [name, location] : tensors_) names.push_back(name);
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace pagoda
