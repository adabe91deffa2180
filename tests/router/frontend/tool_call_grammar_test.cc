#include "router/frontend/tool_call_grammar.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "structured/gbnf_parser.h"
#include "structured/grammar_matcher.h"

namespace pagoda {
namespace {

using nlohmann::json;

std::vector<ToolFunction> Functions() {
  return {{.name = "get_weather", .parameters = json::parse(R"({"type": "object",
               "properties": {"city": {"type": "string"},
                              "unit": {"enum": ["c", "f"]}},
               "required": ["city", "unit"]})")},
          {.name = "now"}};
}

bool Accepts(const std::string& gbnf, const std::string& text) {
  absl::StatusOr<structured::Grammar> grammar = structured::ParseGbnf(gbnf);
  EXPECT_TRUE(grammar.ok()) << grammar.status() << "\n" << gbnf;
  if (!grammar.ok()) return false;
  structured::GrammarMatcher matcher(std::make_shared<structured::Grammar>(*std::move(grammar)));
  return matcher.AcceptString(text) && matcher.IsAccepting();
}

TEST(ToolCallGrammar, HermesRequiredAcceptsEveryFunctionAndParses) {
  absl::StatusOr<std::string> gbnf =
      ToolCallGrammar(ToolCallFormat::kHermes, Functions(), /*parallel=*/true);
  ASSERT_TRUE(gbnf.ok()) << gbnf.status();
  const std::string one =
      "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\":\"Oslo\",\"unit\":"
      "\"c\"}}\n</tool_call>";
  const std::string two =
      one + "\n<tool_call>\n{\"name\": \"now\", \"arguments\": {}}\n</tool_call>";
  EXPECT_TRUE(Accepts(*gbnf, one));
  EXPECT_TRUE(Accepts(*gbnf, two));
  EXPECT_EQ(ParseToolCalls(ToolCallFormat::kHermes, two).calls.size(), 2u);
  // Arguments must match the schema, names must be the tools'.
  EXPECT_FALSE(Accepts(*gbnf,
                       "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\":"
                       "\"Oslo\",\"unit\":\"k\"}}\n</tool_call>"));
  EXPECT_FALSE(
      Accepts(*gbnf, "<tool_call>\n{\"name\": \"other\", \"arguments\": {}}\n</tool_call>"));
  EXPECT_FALSE(Accepts(*gbnf, "plain text"));
  EXPECT_FALSE(Accepts(*gbnf, ""));
}

TEST(ToolCallGrammar, SingleCallWithoutParallel) {
  absl::StatusOr<std::string> gbnf =
      ToolCallGrammar(ToolCallFormat::kHermes, {Functions()[1]}, /*parallel=*/false);
  ASSERT_TRUE(gbnf.ok()) << gbnf.status();
  const std::string call = "<tool_call>\n{\"name\": \"now\", \"arguments\": {}}\n</tool_call>";
  EXPECT_TRUE(Accepts(*gbnf, call));
  EXPECT_FALSE(Accepts(*gbnf, call + "\n" + call));
}

TEST(ToolCallGrammar, Llama3AndMistralShapesParse) {
  absl::StatusOr<std::string> llama =
      ToolCallGrammar(ToolCallFormat::kLlama3Json, Functions(), /*parallel=*/true);
  ASSERT_TRUE(llama.ok()) << llama.status();
  const std::string llama_text =
      R"({"name": "now", "parameters": {}}; {"name": "get_weather", "parameters": {"city":"A","unit":"f"}})";
  EXPECT_TRUE(Accepts(*llama, llama_text));
  EXPECT_EQ(ParseToolCalls(ToolCallFormat::kLlama3Json, llama_text).calls.size(), 2u);
  absl::StatusOr<std::string> mistral =
      ToolCallGrammar(ToolCallFormat::kMistral, Functions(), /*parallel=*/true);
  ASSERT_TRUE(mistral.ok()) << mistral.status();
  const std::string mistral_text =
      R"([TOOL_CALLS][{"name": "now", "arguments": {}}, {"name": "now", "arguments": {}}])";
  EXPECT_TRUE(Accepts(*mistral, mistral_text));
  EXPECT_EQ(ParseToolCalls(ToolCallFormat::kMistral, mistral_text).calls.size(), 2u);
}

TEST(ToolCallGrammar, BadParametersNameTheFunction) {
  std::vector<ToolFunction> functions = {
      {.name = "bad", .parameters = json::parse(R"({"type": "object", "patternProperties": {}})")}};
  absl::StatusOr<std::string> gbnf = ToolCallGrammar(ToolCallFormat::kHermes, functions, false);
  ASSERT_FALSE(gbnf.ok());
  EXPECT_TRUE(absl::StrContains(gbnf.status().message(), "function 'bad'")) << gbnf.status();
}

TEST(ToolCallGrammar, PrefixGbnfRulesLeavesLiteralsAndCountsAlone) {
  EXPECT_EQ(PrefixGbnfRules("root ::= \"a b\" x{2,3} [a-z] # c d\nx ::= \"\\\"y\"\n", "p-"),
            "p-root ::= \"a b\" p-x{2,3} [a-z] # c d\np-x ::= \"\\\"y\"\n");
}

}  // namespace
}  // namespace pagoda
