#include "structured/regex_grammar.h"

#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "structured/gbnf_parser.h"
#include "structured/grammar_matcher.h"

namespace pagoda::structured {
namespace {

using ::testing::HasSubstr;

bool RegexMatches(const std::string& pattern, const std::string& text) {
  absl::StatusOr<Grammar> g = RegexToGrammar(pattern);
  EXPECT_TRUE(g.ok()) << pattern << ": " << g.status();
  if (!g.ok()) return false;
  GrammarMatcher m(std::make_shared<const Grammar>(*std::move(g)));
  return m.AcceptString(text) && m.IsAccepting();
}

void ExpectRegexError(const std::string& pattern, const std::string& message) {
  absl::StatusOr<Grammar> g = RegexToGrammar(pattern);
  ASSERT_FALSE(g.ok()) << pattern;
  EXPECT_EQ(g.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(g.status().message(), HasSubstr(message)) << pattern;
}

TEST(RegexGrammar, ClassesAndShorthands) {
  EXPECT_TRUE(RegexMatches(R"(\d{3}-\w+\s\S)", "123-a_Z9 x"));
  EXPECT_FALSE(RegexMatches(R"(\d{3}-\w+\s\S)", "12-a_Z9 x"));
  EXPECT_FALSE(RegexMatches(R"(\d{3}-\w+\s\S)", "123-a-Z9 x"));
  EXPECT_TRUE(RegexMatches(R"([^a-c\d]+)", "xyz!"));
  EXPECT_FALSE(RegexMatches(R"([^a-c\d]+)", "xbz"));
  EXPECT_FALSE(RegexMatches(R"([^a-c\d]+)", "x1"));
  EXPECT_TRUE(RegexMatches(R"([\w.-]+@[a-z]+\.com)", "a.b-c@x.com"));
  EXPECT_TRUE(RegexMatches(R"(\D\W)", "a!"));
  EXPECT_FALSE(RegexMatches(R"(\D\W)", "1!"));
  EXPECT_TRUE(RegexMatches(".", "é"));
  EXPECT_FALSE(RegexMatches(".", "\n"));
}

TEST(RegexGrammar, GroupsAlternationQuantifiersAnchors) {
  EXPECT_TRUE(RegexMatches("^(ab|cd)*e?$", ""));
  EXPECT_TRUE(RegexMatches("^(ab|cd)*e?$", "abcdabe"));
  EXPECT_FALSE(RegexMatches("^(ab|cd)*e?$", "abc"));
  EXPECT_TRUE(RegexMatches("(?:x|y){2,3}z+?", "xyxzz"));
  EXPECT_FALSE(RegexMatches("(?:x|y){2,3}z+?", "xyxyz"));
  EXPECT_TRUE(RegexMatches("(?<year>[0-9]{4})-(?<m>0[1-9]|1[0-2])", "2024-11"));
  EXPECT_FALSE(RegexMatches("(?<year>[0-9]{4})-(?<m>0[1-9]|1[0-2])", "2024-13"));
  EXPECT_TRUE(RegexMatches(R"(a\.b\*\(\)\$)", "a.b*()$"));
  EXPECT_TRUE(RegexMatches("a{2,}", "aaaaa"));
  EXPECT_FALSE(RegexMatches("a{2,}", "a"));
}

TEST(RegexGrammar, Unicode) {
  EXPECT_TRUE(RegexMatches("[α-ω]+日本", "αβγ日本"));
  EXPECT_FALSE(RegexMatches("[α-ω]+日本", "abc日本"));
  EXPECT_TRUE(RegexMatches(R"(\u00e9\u{1F600}\x41)", "é😀A"));
  EXPECT_TRUE(RegexMatches("[^a]", "😀"));
}

TEST(RegexGrammar, UnsupportedConstructsNameThemselves) {
  ExpectRegexError(R"((a)\1)", "backreferences");
  ExpectRegexError("a(?=b)", "lookarounds");
  ExpectRegexError("a(?!b)", "lookarounds");
  ExpectRegexError(R"(\bword)", "word boundary");
  ExpectRegexError("a^b", "anchors");
  ExpectRegexError("a$b", "anchors");
  ExpectRegexError("(ab", "unclosed '('");
  ExpectRegexError("ab)", "unmatched ')'");
  ExpectRegexError("[ab", "unterminated character class");
  ExpectRegexError("*a", "nothing to repeat");
  ExpectRegexError("a{,3}", "malformed");
  ExpectRegexError(R"(\p{L})", "escape \\p");
  ExpectRegexError("[z-a]", "out of order");
}

TEST(RegexGrammar, InsideJsonStringEscapesSpecialCharacters) {
  absl::StatusOr<std::string> expr = RegexToGbnfExpression(R"(a"[\\x]\n)", true);
  ASSERT_TRUE(expr.ok()) << expr.status();
  absl::StatusOr<Grammar> g = ParseGbnf("root ::= " + *expr);
  ASSERT_TRUE(g.ok()) << g.status();
  GrammarMatcher m(std::make_shared<const Grammar>(*std::move(g)));
  EXPECT_TRUE(m.AcceptString(R"(a\"\\\n)") && m.IsAccepting());
  GrammarMatcher raw(std::make_shared<const Grammar>(m.grammar()));
  EXPECT_FALSE(raw.AcceptString("a\"")) << "a raw quote cannot appear inside a JSON string";
}

TEST(ChoiceGrammar, ExactlyOneChoice) {
  absl::StatusOr<Grammar> g = ChoiceToGrammar({"yes", "no", "日本", ""});
  ASSERT_TRUE(g.ok()) << g.status();
  auto shared = std::make_shared<const Grammar>(*std::move(g));
  for (const char* text : {"yes", "no", "日本", ""}) {
    GrammarMatcher m(shared);
    EXPECT_TRUE(m.AcceptString(text) && m.IsAccepting()) << text;
  }
  GrammarMatcher m(shared);
  EXPECT_FALSE(m.AcceptString("yesno"));
  EXPECT_FALSE(ChoiceToGrammar({}).ok());
}

}  // namespace
}  // namespace pagoda::structured
