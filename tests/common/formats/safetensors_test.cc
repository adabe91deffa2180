#include "common/formats/safetensors.h"

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "common/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagoda {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* base = std::getenv("TEST_TMPDIR");
    std::string pattern = std::string(base != nullptr ? base : "/tmp") + "/pagoda_st_XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Path(const std::string& name) const { return dir_ + "/" + name; }

  // Writes a file with the given header text and data bytes verbatim.
  std::string WriteRaw(const std::string& name, const std::string& header,
                       const std::string& data = "") {
    std::string contents;
    const uint64_t n = header.size();
    for (int i = 0; i < 8; ++i) contents.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
    contents += header;
    contents += data;
    EXPECT_TRUE(WriteStringToFile(Path(name), contents).ok());
    return Path(name);
  }

  absl::Status OpenError(const std::string& path) {
    auto file = SafetensorsFile::Open(path);
    EXPECT_FALSE(file.ok()) << path;
    return file.ok() ? absl::OkStatus() : file.status();
  }

  std::string dir_;
};

std::vector<float> ReadFloats(const TensorInfo& info) {
  std::vector<float> out(info.num_elements());
  EXPECT_TRUE(ConvertToFloat(info, out).ok());
  return out;
}

void ExpectError(const absl::Status& status, absl::StatusCode code,
                 const std::vector<std::string>& substrings) {
  EXPECT_EQ(status.code(), code) << status;
  for (const std::string& s : substrings) {
    EXPECT_THAT(std::string(status.message()), HasSubstr(s));
  }
}

TEST(Float16, DecodesSpecialValues) {
  EXPECT_EQ(HalfToFloat(0x3c00), 1.0f);
  EXPECT_EQ(HalfToFloat(0xc000), -2.0f);
  EXPECT_EQ(HalfToFloat(0x7bff), 65504.0f);
  EXPECT_EQ(HalfToFloat(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(HalfToFloat(0x03ff), 1023 * std::ldexp(1.0f, -24));
  EXPECT_EQ(HalfToFloat(0x0400), std::ldexp(1.0f, -14));  // smallest normal
  EXPECT_EQ(HalfToFloat(0x7c00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(HalfToFloat(0xfc00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(HalfToFloat(0x7e00)));
  EXPECT_TRUE(std::isnan(HalfToFloat(0x7c01)));
  EXPECT_TRUE(std::signbit(HalfToFloat(0x8000)));
  EXPECT_EQ(HalfToFloat(0x8000), 0.0f);
}

TEST(Float16, EveryHalfRoundTripsThroughFloat) {
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    const float value = HalfToFloat(static_cast<uint16_t>(bits));
    if (std::isnan(value)) {
      EXPECT_TRUE(std::isnan(HalfToFloat(FloatToHalf(value)))) << bits;
    } else {
      ASSERT_EQ(FloatToHalf(value), bits) << bits;
    }
  }
}

TEST(Float16, RoundsToNearestEven) {
  EXPECT_EQ(FloatToHalf(1.0f + std::ldexp(1.0f, -11)), 0x3c00);      // tie -> even (1.0)
  EXPECT_EQ(FloatToHalf(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);  // tie -> even (up)
  EXPECT_EQ(FloatToHalf(65520.0f), 0x7c00);                          // overflows to inf
  EXPECT_EQ(FloatToHalf(65519.0f), 0x7bff);
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -25)), 0x0000);     // tie -> even (zero)
  EXPECT_EQ(FloatToHalf(std::ldexp(1.5f, -25)), 0x0001);     // above the tie
  EXPECT_EQ(FloatToHalf(-std::ldexp(1.0f, -30)), 0x8000);    // underflows to -0
  EXPECT_EQ(FloatToHalf(std::ldexp(1023.5f, -24)), 0x0400);  // subnormal rounds to normal
}

TEST(BFloat16, IsTheTopHalfOfFloat) {
  EXPECT_EQ(BFloat16ToFloat(0x3f80), 1.0f);
  EXPECT_EQ(BFloat16ToFloat(0xc060), -3.5f);
  EXPECT_EQ(FloatToBFloat16(1.0f), 0x3f80);
  EXPECT_EQ(FloatToBFloat16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);  // tie -> even
  EXPECT_EQ(FloatToBFloat16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
  EXPECT_TRUE(std::isnan(BFloat16ToFloat(FloatToBFloat16(std::nanf("")))));
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    const float value = BFloat16ToFloat(static_cast<uint16_t>(bits));
    if (!std::isnan(value)) {
      ASSERT_EQ(FloatToBFloat16(value), bits) << bits;
    }
  }
}

TEST_F(SafetensorsTest, RoundTripsF32F16BF16AndMetadata) {
  const std::vector<float> f32 = {1.5f, -2.25f, 3.0e-8f, 1e30f, 0.0f, -7.0f};
  const std::vector<float> f16 = {1.0f, -2.0f, 65504.0f, std::ldexp(1.0f, -24), 0.5f, -0.0f};
  const std::vector<float> bf16 = {1.0f, -3.5f, std::ldexp(1.0f, 100)};
  const std::vector<float> empty;
  const std::string path = Path("model.safetensors");
  ASSERT_TRUE(WriteSafetensors(path,
                               {{"a.f32", SafetensorsDType::kF32, {2, 3}, f32, {}},
                                {"b.f16", SafetensorsDType::kF16, {3, 2}, f16, {}},
                                {"c.bf16", SafetensorsDType::kBF16, {3}, bf16, {}},
                                {"d.empty", SafetensorsDType::kF32, {0, 4}, empty, {}}},
                               {{"format", "pt"}})
                  .ok());
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_THAT((*file)->TensorNames(), ElementsAre("a.f32", "b.f16", "c.bf16", "d.empty"));
  EXPECT_EQ((*file)->metadata().at("format"), "pt");
  EXPECT_EQ((*file)->path(), path);
  EXPECT_EQ((*file)->Find("missing"), nullptr);

  const TensorInfo* a = (*file)->Find("a.f32");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->dtype, SafetensorsDType::kF32);
  EXPECT_THAT(a->shape, ElementsAre(2, 3));
  EXPECT_EQ(ReadFloats(*a), f32);
  const TensorInfo* b = (*file)->Find("b.f16");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->dtype, SafetensorsDType::kF16);
  EXPECT_EQ(b->data.size(), 12u);
  EXPECT_EQ(ReadFloats(*b), f16);
  const TensorInfo* c = (*file)->Find("c.bf16");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(ReadFloats(*c), bf16);
  const TensorInfo* d = (*file)->Find("d.empty");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->num_elements(), 0);
  EXPECT_TRUE(ReadFloats(*d).empty());

  std::vector<float> wrong_size(5);
  EXPECT_EQ(ConvertToFloat(*a, wrong_size).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(SafetensorsTest, ReadsUnalignedData) {
  float values[2] = {3.25f, -1.0f};
  std::string data(1, 'x');  // one padding byte so the tensor starts at an odd address
  data.append(reinterpret_cast<const char*>(values), sizeof(values));
  const std::string path = WriteRaw(
      "unaligned.safetensors", R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[1,9]}})", data);
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_THAT(ReadFloats(*(*file)->Find("t")), ElementsAre(3.25f, -1.0f));
}

TEST_F(SafetensorsTest, NonFloatDTypeIsReadButNotConverted) {
  const int64_t ids[2] = {7, 9};
  const std::string path = Path("ids.safetensors");
  ASSERT_TRUE(
      WriteSafetensors(
          path,
          {{"ids", SafetensorsDType::kI64, {2}, {}, std::as_bytes(std::span<const int64_t>(ids))}})
          .ok());
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  const TensorInfo* info = (*file)->Find("ids");
  ASSERT_NE(info, nullptr);
  std::vector<float> out(2);
  ExpectError(ConvertToFloat(*info, out), absl::StatusCode::kInvalidArgument, {"ids", "I64"});
}

TEST_F(SafetensorsTest, RejectsShortFilesAndBadHeaderLengths) {
  ASSERT_TRUE(WriteStringToFile(Path("short"), "abc").ok());
  ExpectError(OpenError(Path("short")), absl::StatusCode::kDataLoss, {Path("short"), "too short"});
  ASSERT_TRUE(WriteStringToFile(Path("empty"), "").ok());
  ExpectError(OpenError(Path("empty")), absl::StatusCode::kDataLoss, {Path("empty")});

  std::string beyond(8, '\0');
  beyond[0] = 100;  // claims a 100-byte header
  beyond += "{}";
  ASSERT_TRUE(WriteStringToFile(Path("beyond"), beyond).ok());
  ExpectError(OpenError(Path("beyond")), absl::StatusCode::kDataLoss,
              {Path("beyond"), "header length 100", "past the end"});

  std::string absurd(8, '\xff');  // 2^64 - 1
  ASSERT_TRUE(WriteStringToFile(Path("absurd"), absurd).ok());
  ExpectError(OpenError(Path("absurd")), absl::StatusCode::kInvalidArgument,
              {Path("absurd"), "exceeds the limit"});

  auto missing = SafetensorsFile::Open(Path("nonexistent.safetensors"));
  ExpectError(missing.status(), absl::StatusCode::kNotFound, {"nonexistent.safetensors"});
}

TEST_F(SafetensorsTest, RejectsMalformedHeaders) {
  struct Case {
    std::string header;
    std::string data;
    absl::StatusCode code;
    std::vector<std::string> substrings;
  };
  const std::string f32x2 = std::string(8, '\0');
  const std::vector<Case> cases = {
      {R"({"t": {"dtype": "F32",)", "", absl::StatusCode::kInvalidArgument, {"not valid JSON"}},
      {R"([1, 2])", "", absl::StatusCode::kInvalidArgument, {"not a JSON object"}},
      {R"({"t": 5})", "", absl::StatusCode::kInvalidArgument, {"tensor t", "not a JSON object"}},
      {R"({"t": {"shape": [2], "data_offsets": [0, 8]}})",
       f32x2,
       absl::StatusCode::kInvalidArgument,
       {"tensor t", "dtype"}},
      {R"({"t": {"dtype": "F8_E9M9", "shape": [2], "data_offsets": [0, 8]}})",
       f32x2,
       absl::StatusCode::kInvalidArgument,
       {"tensor t", "F8_E9M9"}},
      {R"({"t": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})",
       f32x2,
       absl::StatusCode::kInvalidArgument,
       {"tensor t", "negative"}},
      {R"({"t": {"dtype": "F32", "shape": [2.5], "data_offsets": [0, 8]}})",
       f32x2,
       absl::StatusCode::kInvalidArgument,
       {"tensor t", "shape"}},
      {R"({"t": {"dtype": "F32", "shape": "2", "data_offsets": [0, 8]}})",
       f32x2,
       absl::StatusCode::kInvalidArgument,
       {"tensor t", "shape"}},
      {R"({"t": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]}})",
       f32x2,
       absl::StatusCode::kInvalidArgument,
       {"tensor t", "overflows"}},
      {R"({"t": {"dtype": "F32", "shape": [18446744073709551615], "data_offsets": [0, 8]}})",
       f32x2,
       absl::StatusCode::kInvalidArgument,
       {"tensor t", "shape"}},
      {R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}})",
       f32x2,
       absl::StatusCode::kInvalidArgument,
       {"tensor t", "begin <= end"}},
      {R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0]}})",
       f32x2,
       absl::StatusCode::kInvalidArgument,
       {"tensor t", "data_offsets"}},
      {R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 16]}})",
       f32x2,
       absl::StatusCode::kDataLoss,
       {"tensor t", "past the data section"}},
      {R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 18446744073709551615]}})",
       f32x2,
       absl::StatusCode::kInvalidArgument,
       {"tensor t", "data_offsets"}},
      {R"({"t": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})",
       f32x2,
       absl::StatusCode::kInvalidArgument,
       {"tensor t", "span 8 bytes", "need 12"}},
      {R"({"t": {"dtype": "F16", "shape": [2], "data_offsets": [0, 8]}})",
       f32x2,
       absl::StatusCode::kInvalidArgument,
       {"tensor t", "need 4"}},
      {R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
           "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
       f32x2,
       absl::StatusCode::kInvalidArgument,
       {"overlap"}},
      {R"({"__metadata__": {"format": 1}})",
       "",
       absl::StatusCode::kInvalidArgument,
       {"__metadata__", "format"}},
      {R"({"__metadata__": []})", "", absl::StatusCode::kInvalidArgument, {"__metadata__"}},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(cases[i].header);
    const std::string path = WriteRaw("bad" + std::to_string(i), cases[i].header, cases[i].data);
    const absl::Status status = OpenError(path);
    std::vector<std::string> substrings = cases[i].substrings;
    substrings.push_back(path);
    ExpectError(status, cases[i].code, substrings);
  }
}

TEST_F(SafetensorsTest, TruncatedFileNamesTheTensor) {
  const std::vector<float> values(64, 1.0f);
  const std::string path = Path("truncated.safetensors");
  ASSERT_TRUE(
      WriteSafetensors(path, {{"layer.weight", SafetensorsDType::kF32, {8, 8}, values, {}}}).ok());
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 5);
  ExpectError(OpenError(path), absl::StatusCode::kDataLoss, {path, "layer.weight", "truncated"});
}

TEST_F(SafetensorsTest, CorruptedBytesNeverCrash) {
  const std::vector<float> values(16, 0.5f);
  const std::string path = Path("good.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, {{"w", SafetensorsDType::kF16, {4, 4}, values, {}},
                                      {"b", SafetensorsDType::kBF16, {4}, {values.data(), 4}, {}}})
                  .ok());
  auto good = ReadFileToString(path);
  ASSERT_TRUE(good.ok());
  std::mt19937 rng(1234);
  for (int trial = 0; trial < 300; ++trial) {
    std::string bytes = *good;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      bytes[rng() % bytes.size()] = static_cast<char>(rng() & 0xff);
    }
    if (trial % 3 == 0) bytes.resize(rng() % bytes.size());
    ASSERT_TRUE(WriteStringToFile(Path("fuzz"), bytes).ok());
    auto file = SafetensorsFile::Open(Path("fuzz"));
    if (!file.ok()) continue;
    for (const std::string& name : (*file)->TensorNames()) {
      const TensorInfo* info = (*file)->Find(name);
      if (info->num_elements() > 1024) continue;
      std::vector<float> out(info->num_elements());
      (void)ConvertToFloat(*info, out);
    }
  }
}

TEST_F(SafetensorsTest, CheckpointOpensASingleFile) {
  const std::vector<float> values = {1, 2, 3};
  ASSERT_TRUE(
      WriteSafetensors(Path("model.safetensors"), {{"x", SafetensorsDType::kF32, {3}, values, {}}})
          .ok());
  auto checkpoint = SafetensorsCheckpoint::Open(dir_);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  ASSERT_NE((*checkpoint)->Find("x"), nullptr);
  EXPECT_EQ((*checkpoint)->FileOf("x"), Path("model.safetensors"));
  EXPECT_EQ((*checkpoint)->Find("y"), nullptr);
  EXPECT_EQ((*checkpoint)->FileOf("y"), "");
}

TEST_F(SafetensorsTest, CheckpointFindsTensorsAcrossShards) {
  const std::vector<float> a = {1, 2}, b = {3, 4, 5};
  ASSERT_TRUE(WriteSafetensors(Path("model-00001-of-00002.safetensors"),
                               {{"a", SafetensorsDType::kF32, {2}, a, {}}})
                  .ok());
  ASSERT_TRUE(WriteSafetensors(Path("model-00002-of-00002.safetensors"),
                               {{"b", SafetensorsDType::kBF16, {3}, b, {}}})
                  .ok());
  ASSERT_TRUE(WriteStringToFile(Path("model.safetensors.index.json"),
                                R"({"metadata": {"total_size": 14}, "weight_map": {
                                  "a": "model-00001-of-00002.safetensors",
                                  "b": "model-00002-of-00002.safetensors"}})")
                  .ok());
  auto checkpoint = SafetensorsCheckpoint::Open(dir_);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  EXPECT_THAT((*checkpoint)->TensorNames(), ElementsAre("a", "b"));
  EXPECT_EQ((*checkpoint)->files().size(), 2u);
  ASSERT_NE((*checkpoint)->Find("b"), nullptr);
  EXPECT_EQ(ReadFloats(*(*checkpoint)->Find("b")), b);
  EXPECT_EQ((*checkpoint)->FileOf("b"), Path("model-00002-of-00002.safetensors"));
}

TEST_F(SafetensorsTest, CheckpointRejectsBadIndexes) {
  const std::string index = Path("model.safetensors.index.json");
  auto open_error = [&]() {
    auto checkpoint = SafetensorsCheckpoint::Open(dir_);
    EXPECT_FALSE(checkpoint.ok());
    return checkpoint.ok() ? absl::OkStatus() : checkpoint.status();
  };
  ExpectError(open_error(), absl::StatusCode::kNotFound, {dir_, "model.safetensors"});

  ASSERT_TRUE(WriteStringToFile(index, R"({"weight_map": {"a": )").ok());
  ExpectError(open_error(), absl::StatusCode::kInvalidArgument, {index, "not valid JSON"});

  ASSERT_TRUE(WriteStringToFile(index, R"({"weight_map": ["a"]})").ok());
  ExpectError(open_error(), absl::StatusCode::kInvalidArgument, {index, "weight_map"});

  ASSERT_TRUE(WriteStringToFile(index, R"({"weight_map": {"a": 3}})").ok());
  ExpectError(open_error(), absl::StatusCode::kInvalidArgument, {index, "a"});

  ASSERT_TRUE(WriteStringToFile(index, R"({"weight_map": {"a": "../escape.safetensors"}})").ok());
  ExpectError(open_error(), absl::StatusCode::kInvalidArgument, {index, "escape"});

  ASSERT_TRUE(WriteStringToFile(index, R"({"weight_map": {"a": "shard1.safetensors"}})").ok());
  ExpectError(open_error(), absl::StatusCode::kNotFound, {index, "shard1.safetensors"});

  const std::vector<float> values = {1};
  ASSERT_TRUE(WriteSafetensors(Path("shard1.safetensors"),
                               {{"other", SafetensorsDType::kF32, {1}, values, {}}})
                  .ok());
  ExpectError(open_error(), absl::StatusCode::kNotFound, {index, "tensor a", "shard1"});

  ASSERT_TRUE(
      WriteSafetensors(Path("shard1.safetensors"), {{"a", SafetensorsDType::kF32, {1}, values, {}}})
          .ok());
  ASSERT_TRUE(
      WriteSafetensors(Path("shard2.safetensors"), {{"a", SafetensorsDType::kF32, {1}, values, {}},
                                                    {"b", SafetensorsDType::kF32, {1}, values, {}}})
          .ok());
  ASSERT_TRUE(WriteStringToFile(index, R"({"weight_map": {"a": "shard1.safetensors",
                                                          "b": "shard2.safetensors"}})")
                  .ok());
  ExpectError(open_error(), absl::StatusCode::kInvalidArgument, {"tensor a", "shard2"});

  ASSERT_TRUE(WriteStringToFile(Path("shard2.safetensors"), "junk").ok());
  ExpectError(open_error(), absl::StatusCode::kDataLoss, {index, "shard2.safetensors"});
}

TEST_F(SafetensorsTest, WriterRejectsMismatchedValues) {
  const std::vector<float> values = {1, 2, 3};
  ExpectError(WriteSafetensors(Path("x"), {{"t", SafetensorsDType::kF32, {2, 2}, values, {}}}),
              absl::StatusCode::kInvalidArgument, {"tensor t"});
  ExpectError(WriteSafetensors(Path("x"), {{"t", SafetensorsDType::kF32, {3}, values, {}},
                                           {"t", SafetensorsDType::kF32, {3}, values, {}}}),
              absl::StatusCode::kInvalidArgument, {"duplicate"});
}

}  // namespace
}  // namespace pagoda
