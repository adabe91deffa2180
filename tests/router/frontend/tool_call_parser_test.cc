#include "router/frontend/tool_call_parser.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagoda {
namespace {

using ::testing::ElementsAre;
using ::testing::Eq;
using ::testing::Field;
using ::testing::Optional;

auto IsCall(const std::string& name, const std::string& arguments) {
  return AllOf(Field(&ToolCall::name, name), Field(&ToolCall::arguments, arguments));
}

TEST(ToolCallParser, HermesCallsAndContent) {
  const ParsedToolCalls parsed = ParseToolCalls(
      ToolCallFormat::kHermes,
      "Let me look.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": "
      "\"Paris\"}}\n</tool_call>\n<tool_call>{\"arguments\": {}, \"name\": \"now\"}</tool_call>");
  EXPECT_THAT(parsed.content, Optional(Eq("Let me look.\n\n")));
  EXPECT_THAT(parsed.calls,
              ElementsAre(IsCall("get_weather", R"({"city": "Paris"})"), IsCall("now", "{}")));
}

TEST(ToolCallParser, HermesOnlyCallsHasNullContent) {
  const ParsedToolCalls parsed =
      ParseToolCalls(ToolCallFormat::kHermes, "<tool_call>{\"name\": \"f\"}</tool_call>\n");
  EXPECT_EQ(parsed.content, std::nullopt);
  EXPECT_THAT(parsed.calls, ElementsAre(IsCall("f", "{}")));
}

TEST(ToolCallParser, HermesWithoutEndMarkerAndStringArguments) {
  const ParsedToolCalls parsed = ParseToolCalls(
      ToolCallFormat::kHermes, R"(<tool_call>{"name": "f", "arguments": "{\"a\": 1}"})");
  EXPECT_THAT(parsed.calls, ElementsAre(IsCall("f", R"({"a": 1})")));
}

TEST(ToolCallParser, MalformedOrUnfinishedCallsAreText) {
  for (const std::string text :
       {"<tool_call>not json</tool_call>", "<tool_call>{\"name\": 3}</tool_call>",
        "<tool_call>{\"arguments\": {}}</tool_call>", "<tool_call>{\"name\": \"f\", \"argu",
        "<tool_call>"}) {
    const ParsedToolCalls parsed = ParseToolCalls(ToolCallFormat::kHermes, text);
    EXPECT_TRUE(parsed.calls.empty()) << text;
    EXPECT_THAT(parsed.content, Optional(Eq(text)));
  }
}

TEST(ToolCallParser, PlainTextHasNoCalls) {
  const ParsedToolCalls parsed = ParseToolCalls(ToolCallFormat::kHermes, "Hello <tool");
  EXPECT_TRUE(parsed.calls.empty());
  EXPECT_THAT(parsed.content, Optional(Eq("Hello <tool")));
}

TEST(ToolCallParser, Llama3JsonWithTagAndSeparators) {
  const ParsedToolCalls parsed = ParseToolCalls(
      ToolCallFormat::kLlama3Json,
      R"(<|python_tag|>{"name": "a", "parameters": {"x": [1, 2]}}; {"name": "b", "parameters": {}})");
  EXPECT_EQ(parsed.content, std::nullopt);
  EXPECT_THAT(parsed.calls, ElementsAre(IsCall("a", R"({"x": [1, 2]})"), IsCall("b", "{}")));
  const ParsedToolCalls plain =
      ParseToolCalls(ToolCallFormat::kLlama3Json, R"(Sure: {"name": "a", "parameters": {}})");
  EXPECT_TRUE(plain.calls.empty());
  const ParsedToolCalls junk =
      ParseToolCalls(ToolCallFormat::kLlama3Json, R"({"name": "a", "parameters": {}} and more)");
  EXPECT_TRUE(junk.calls.empty());
}

TEST(ToolCallParser, MistralArray) {
  const ParsedToolCalls parsed = ParseToolCalls(
      ToolCallFormat::kMistral,
      R"(Calling.[TOOL_CALLS] [{"name": "a", "arguments": {"q": "}{"}}, {"name": "b", "arguments": {}}])");
  EXPECT_THAT(parsed.content, Optional(Eq("Calling.")));
  EXPECT_THAT(parsed.calls, ElementsAre(IsCall("a", R"({"q": "}{"})"), IsCall("b", "{}")));
}

TEST(ToolCallParser, PrefixHoldsBackAPartialMarker) {
  ToolCallSnapshot snapshot = ParseToolCallsPrefix(ToolCallFormat::kHermes, "Hi <tool_c", false);
  EXPECT_EQ(snapshot.content, "Hi ");
  snapshot = ParseToolCallsPrefix(ToolCallFormat::kHermes, "Hi <tool_c", true);
  EXPECT_EQ(snapshot.content, "Hi <tool_c");
  snapshot = ParseToolCallsPrefix(ToolCallFormat::kMistral, "x [TOOL", false);
  EXPECT_EQ(snapshot.content, "x ");
}

TEST(ToolCallParser, PrefixGrowsArgumentsBeforeTheCallEnds) {
  const ToolCallSnapshot snapshot = ParseToolCallsPrefix(
      ToolCallFormat::kHermes, R"(<tool_call>{"name": "f", "arguments": {"a": "b)", false);
  ASSERT_EQ(snapshot.calls.size(), 1u);
  EXPECT_THAT(snapshot.calls[0].name, Optional(Eq("f")));
  EXPECT_EQ(snapshot.calls[0].arguments, R"({"a": "b)");
  EXPECT_FALSE(snapshot.calls[0].complete);
}

TEST(ToolCallParser, FormatNamesAndDetection) {
  EXPECT_EQ(*ToolCallFormatFromName("mistral"), ToolCallFormat::kMistral);
  EXPECT_FALSE(ToolCallFormatFromName("qwen").ok());
  EXPECT_EQ(DetectToolCallFormat("{{ '<tool_call>' }}"), ToolCallFormat::kHermes);
  EXPECT_EQ(DetectToolCallFormat("[TOOL_CALLS] {{ x }}"), ToolCallFormat::kMistral);
  EXPECT_EQ(DetectToolCallFormat("<|python_tag|>"), ToolCallFormat::kLlama3Json);
  EXPECT_EQ(DetectToolCallFormat("{{ messages }}"), ToolCallFormat::kHermes);
}

}  // namespace
}  // namespace pagoda
