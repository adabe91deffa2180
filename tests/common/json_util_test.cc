#include "common/json_util.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagoda {
namespace {

using ::testing::HasSubstr;

std::string NestedArrays(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

std::string NestedObjects(int depth) {
  std::string text;
  for (int i = 0; i < depth; ++i) text += R"({"a":)";
  text += "1";
  return text + std::string(depth, '}');
}

TEST(ParseJson, ParsesValidJson) {
  absl::StatusOr<nlohmann::json> parsed = ParseJson(R"({"a": [1, {"b": "c"}], "d": null})");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ((*parsed)["a"][1]["b"], "c");
  EXPECT_TRUE((*parsed)["d"].is_null());
}

TEST(ParseJson, AcceptsNestingUpToTheBound) {
  // Depth counts from 0 at the outermost value, as nlohmann's parser callback does.
  EXPECT_TRUE(ParseJson(NestedArrays(kMaxJsonDepth + 1)).ok());
  EXPECT_TRUE(ParseJson(NestedObjects(kMaxJsonDepth)).ok());
  EXPECT_TRUE(ParseJson(NestedArrays(4), /*max_depth=*/3).ok());
}

TEST(ParseJson, RefusesDeeperNesting) {
  for (const std::string& text :
       {NestedArrays(kMaxJsonDepth + 2), NestedObjects(kMaxJsonDepth + 2)}) {
    absl::StatusOr<nlohmann::json> parsed = ParseJson(text);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(parsed.status().message(), HasSubstr("nested deeper than 128 levels"));
  }
  EXPECT_FALSE(ParseJson(NestedArrays(5), /*max_depth=*/3).ok());
}

TEST(ParseJson, RefusesHostileDepthWithoutBuildingIt) {
  // 200 000 levels: building and then copying such a value overflowed the stack.
  absl::StatusOr<nlohmann::json> parsed =
      ParseJson(R"({"messages": [{"content": )" + NestedObjects(200'000) + "}]}");
  EXPECT_THAT(parsed.status().message(), HasSubstr("nested deeper"));
}

TEST(ParseJson, RefusesInvalidJson) {
  for (const char* text : {"", "{", R"({"a": })", "[1, 2", "\"\xff\""}) {
    absl::StatusOr<nlohmann::json> parsed = ParseJson(text);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(parsed.status().message(), HasSubstr("not valid JSON"));
  }
}

}  // namespace
}  // namespace pagoda
