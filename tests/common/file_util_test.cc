#include "common/file_util.h"

#include <cstdlib>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagoda {
namespace {

using ::testing::HasSubstr;

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir != nullptr ? dir : "/tmp") + "/pagoda_file_util_test_" + name;
}

TEST(FileUtil, WriteThenReadRoundTrips) {
  const std::string path = TempPath("roundtrip");
  ASSERT_TRUE(WriteStringToFile(path, std::string("a\0b", 3)).ok());
  auto text = ReadFileToString(path);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, std::string("a\0b", 3));
  auto mapped = MappedFile::Open(path);
  ASSERT_TRUE(mapped.ok()) << mapped.status();
  ASSERT_EQ(mapped->size(), 3u);
  EXPECT_EQ(static_cast<char>(mapped->bytes()[2]), 'b');
  std::remove(path.c_str());
}

TEST(FileUtil, MissingFileIsNotFoundAndNamesThePath) {
  auto text = ReadFileToString("/nonexistent/pagoda/file.json");
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(text.status().message()), HasSubstr("/nonexistent/pagoda/file.json"));
  auto mapped = MappedFile::Open("/nonexistent/pagoda/model.safetensors");
  ASSERT_FALSE(mapped.ok());
  EXPECT_THAT(std::string(mapped.status().message()), HasSubstr("model.safetensors"));
}

TEST(FileUtil, DirectoryIsNotMappable) {
  auto mapped = MappedFile::Open("/tmp");
  ASSERT_FALSE(mapped.ok());
  EXPECT_EQ(mapped.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace pagoda
