#include "common/formats/gguf.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/common/formats/gguf_test_util.h"

// The reader against files written by the `gguf` PyPI package, and the corrupted-file battery.
// ModelConfigFromGguf is tested in gguf_model_config_test.cc (the same gguf_test binary).
namespace pagoda::gguf_testing {
namespace {

using json = nlohmann::json;
using ::testing::ElementsAre;

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
}  // namespace
}  // namespace pagoda::gguf_testing
