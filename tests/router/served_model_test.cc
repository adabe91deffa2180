#include "router/served_model.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/stories260k.h"

namespace pagoda {
namespace {

using ::testing::HasSubstr;
using testing::Stories260KDir;

TEST(ServedModel, LoadsTheModelWithItsDirectoryNameAndContext) {
  absl::StatusOr<ServedModel> model = ServedModel::Load({.model_dir = Stories260KDir()});
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->name, std::filesystem::path(Stories260KDir()).filename().string());
  EXPECT_EQ(model->max_model_len, 512);  // stories260K's positions
  ASSERT_NE(model->tokenizer, nullptr);
  EXPECT_EQ(model->tokenizer->Encode("Once upon a time").front(), 1);  // BOS
  EXPECT_THAT(model->eos_token_ids, ::testing::Contains(2));
  EXPECT_FALSE(model->chat_template.has_value());  // stories260K has none

  // A trailing slash names the same directory.
  absl::StatusOr<ServedModel> slash = ServedModel::Load({.model_dir = Stories260KDir() + "/"});
  ASSERT_TRUE(slash.ok()) << slash.status();
  EXPECT_EQ(slash->name, model->name);
}

TEST(ServedModel, NameAndContextLengthFollowTheOptions) {
  absl::StatusOr<ServedModel> model = ServedModel::Load(
      {.model_dir = Stories260KDir(), .model_name = "tiny", .max_model_len = 100});
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->name, "tiny");
  EXPECT_EQ(model->max_model_len, 100);
  // Longer than the model's positions: lowered to them.
  absl::StatusOr<ServedModel> longer =
      ServedModel::Load({.model_dir = Stories260KDir(), .max_model_len = 4096});
  ASSERT_TRUE(longer.ok()) << longer.status();
  EXPECT_EQ(longer->max_model_len, 512);
}

TEST(ServedModel, ChatTemplateComesFromTheFlagsFile) {
  const std::string file = std::string(PAGODA_TEST_DATA_DIR) + "/chat_templates/smollm2.jinja";
  absl::StatusOr<ServedModel> model =
      ServedModel::Load({.model_dir = Stories260KDir(), .chat_template_file = file});
  ASSERT_TRUE(model.ok()) << model.status();
  ASSERT_TRUE(model->chat_template.has_value());
  absl::StatusOr<std::string> text = model->chat_template->Render(
      nlohmann::json::array({{{"role", "user"}, {"content", "hi"}}}), true);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_THAT(*text, HasSubstr("hi"));
}

TEST(ServedModel, ErrorsNameWhatIsWrong) {
  absl::StatusOr<ServedModel> missing = ServedModel::Load(
      {.model_dir = Stories260KDir(), .chat_template_file = "/nonexistent/template.jinja"});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(missing.status().message(), HasSubstr("--chat-template"));
  EXPECT_THAT(missing.status().message(), HasSubstr("/nonexistent/template.jinja"));

  const std::string bad = std::filesystem::temp_directory_path() / "pagoda_served_model_bad.jinja";
  std::ofstream(bad) << "{% if %}";
  absl::StatusOr<ServedModel> unparsable =
      ServedModel::Load({.model_dir = Stories260KDir(), .chat_template_file = bad});
  std::remove(bad.c_str());
  ASSERT_FALSE(unparsable.ok());
  EXPECT_EQ(unparsable.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(unparsable.status().message(), HasSubstr("--chat-template: " + bad));

  EXPECT_FALSE(ServedModel::Load({.model_dir = "/nonexistent/model"}).ok());
}

}  // namespace
}  // namespace pagoda
