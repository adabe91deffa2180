#include "router/frontend/api_keys.h"

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagoda {
namespace {

using ::testing::HasSubstr;

class ApiKeysTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ =
        (std::filesystem::path(::testing::TempDir()) /
         (std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + ".keys"))
            .string();
  }
  void TearDown() override { std::filesystem::remove(path_); }
  void Write(const std::string& text) { std::ofstream(path_) << text; }

  std::string path_;
};

TEST_F(ApiKeysTest, NoKeyMeansOpen) {
  std::unique_ptr<ApiKeys> keys = ApiKeys::Create("", "").value();
  EXPECT_FALSE(keys->enabled());
  EXPECT_TRUE(keys->Authorizes(""));
  EXPECT_TRUE(keys->Authorizes("Bearer anything"));
  EXPECT_TRUE(keys->Reload().ok());
}

TEST_F(ApiKeysTest, OneKeyNeedsTheBearerPrefixAndTheWholeKey) {
  std::unique_ptr<ApiKeys> keys = ApiKeys::Create("sesame", "").value();
  EXPECT_TRUE(keys->enabled());
  EXPECT_TRUE(keys->Authorizes("Bearer sesame"));
  for (const char* wrong : {"", "sesame", "Bearer ", "Bearer sesam", "Bearer sesame2",
                            "Bearer Sesame", "bearer sesame", "Bearer  sesame", "Basic sesame"}) {
    EXPECT_FALSE(keys->Authorizes(wrong)) << wrong;
  }
}

TEST_F(ApiKeysTest, FileKeysSkipCommentsAndBlanksAndAddToTheFlagKey) {
  Write("# team a\nalpha\n\n  beta  \r\n# old: gamma\n");
  std::unique_ptr<ApiKeys> keys = ApiKeys::Create("flag", path_).value();
  EXPECT_EQ(keys->num_keys(), 3u);
  for (const char* ok : {"Bearer flag", "Bearer alpha", "Bearer beta"}) {
    EXPECT_TRUE(keys->Authorizes(ok)) << ok;
  }
  EXPECT_FALSE(keys->Authorizes("Bearer gamma"));
  EXPECT_FALSE(keys->Authorizes("Bearer # old: gamma"));
}

TEST_F(ApiKeysTest, ReloadRotatesAndABadFileKeepsTheKeysInForce) {
  Write("alpha\n");
  std::unique_ptr<ApiKeys> keys = ApiKeys::Create("", path_).value();
  Write("beta\n");
  ASSERT_TRUE(keys->Reload().ok());
  EXPECT_FALSE(keys->Authorizes("Bearer alpha"));
  EXPECT_TRUE(keys->Authorizes("Bearer beta"));

  Write("# emptied by mistake\n");
  absl::Status reloaded = keys->Reload();
  EXPECT_EQ(reloaded.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(reloaded.message(), HasSubstr("holds no API key"));
  EXPECT_TRUE(keys->Authorizes("Bearer beta"));

  std::filesystem::remove(path_);
  EXPECT_FALSE(keys->Reload().ok());
  EXPECT_TRUE(keys->Authorizes("Bearer beta"));
}

TEST_F(ApiKeysTest, RefusesBadKeysNamingTheLine) {
  Write("good\nhas space\n");
  absl::StatusOr<std::unique_ptr<ApiKeys>> keys = ApiKeys::Create("", path_);
  EXPECT_EQ(keys.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(keys.status().message(), HasSubstr(path_ + ":2"));
  EXPECT_THAT(keys.status().message(), HasSubstr("printable ASCII"));

  Write(std::string(257, 'k') + "\n");
  EXPECT_THAT(ApiKeys::Create("", path_).status().message(), HasSubstr("1 to 256 bytes"));
  EXPECT_THAT(ApiKeys::Create("tab\there", "").status().message(), HasSubstr("--api-key"));
  Write("");
  EXPECT_THAT(ApiKeys::Create("", path_).status().message(), HasSubstr("holds no API key"));
  EXPECT_FALSE(ApiKeys::Create("", path_ + ".missing").ok());
}

}  // namespace
}  // namespace pagoda
