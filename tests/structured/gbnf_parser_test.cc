#include "structured/gbnf_parser.h"

#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "structured/grammar_matcher.h"

namespace pagoda::structured {
namespace {

using ::testing::HasSubstr;

bool Matches(const Grammar& g, const std::string& text) {
  GrammarMatcher m(std::make_shared<const Grammar>(g));
  return m.AcceptString(text) && m.IsAccepting();
}

Grammar Parse(const std::string& gbnf) {
  absl::StatusOr<Grammar> g = ParseGbnf(gbnf);
  EXPECT_TRUE(g.ok()) << g.status();
  return g.ok() ? *std::move(g) : *ParseGbnf("root ::= \"\"");
}

void ExpectError(const std::string& gbnf, const std::string& message) {
  absl::StatusOr<Grammar> g = ParseGbnf(gbnf);
  ASSERT_FALSE(g.ok()) << gbnf;
  EXPECT_EQ(g.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(g.status().message(), HasSubstr(message)) << gbnf;
}

TEST(GbnfParser, LiteralsAlternativesAndRulesAcrossLines) {
  const Grammar g = Parse(R"(# a comment
root ::= greeting " " name   # trailing comment
greeting ::= "hello"
           | "hi"
name ::= [A-Z] [a-z]*)");
  EXPECT_TRUE(Matches(g, "hello Ada"));
  EXPECT_TRUE(Matches(g, "hi B"));
  EXPECT_FALSE(Matches(g, "hey Ada"));
  EXPECT_FALSE(Matches(g, "hi ada"));
}

TEST(GbnfParser, RepetitionForms) {
  const Grammar g = Parse(R"(root ::= "a"+ "b"? "c"{2} "d"{1,3} "e"{2,} ("x" | "y")*)");
  EXPECT_TRUE(Matches(g,
                      "acc"
                      "d"
                      "ee"));
  EXPECT_TRUE(Matches(g, "aaabccdddeeexyyx"));
  EXPECT_FALSE(Matches(g, "bccdee"));     // a+ needs one
  EXPECT_FALSE(Matches(g, "accddddee"));  // d{1,3}
  EXPECT_FALSE(Matches(g, "acdee"));      // c{2}
  EXPECT_FALSE(Matches(g, "accde"));      // e{2,}
}

TEST(GbnfParser, ClassesNegationAndEscapes) {
  const Grammar g = Parse(R"(root ::= [^"\\\n] "\t" [\x41-\x43] "\"" [\]\-] "\u00e9" "\\")");
  EXPECT_TRUE(Matches(g, "z\tB\"]\xC3\xA9\\"));
  EXPECT_TRUE(Matches(g, "\xE6\x97\xA5\tC\"-\xC3\xA9\\"));  // a multi-byte char in [^...]
  EXPECT_FALSE(Matches(g, "\"\tB\"]\xC3\xA9\\"));
  EXPECT_FALSE(Matches(g, "z\tD\"]\xC3\xA9\\"));
}

TEST(GbnfParser, UnicodeLiteralsAndRanges) {
  const Grammar g = Parse("root ::= \"日本\" [α-ω]+ [\\U0001F600-\\U0001F64F]");
  EXPECT_TRUE(Matches(g, "日本αβω😀"));
  EXPECT_FALSE(Matches(g, "日本Aω😀"));
  EXPECT_FALSE(Matches(g, "日本α\xCE"));  // a cut character
  const Grammar any = Parse("root ::= .{2}");
  EXPECT_TRUE(Matches(any, "é😀"));
  EXPECT_FALSE(Matches(any, "\xC3"));
  EXPECT_FALSE(Matches(any, "abc"));
}

TEST(GbnfParser, ErrorsNameLineColumnAndProblem) {
  ExpectError("root ::= \"a\"\n  x := \"b\"", "line 2 column 5: unexpected character ':'");
  ExpectError("root \"a\"", "line 1 column 6: expected '::='");
  ExpectError("root ::= missing", "rule 'missing' is not defined");
  ExpectError("root ::= \"abc", "unterminated literal");
  ExpectError("root ::= [a-", "unterminated character class");
  ExpectError("root ::= \"\\q\"", "unknown escape");
  ExpectError("root ::= \"a\"{3,1}", "n < m");
  ExpectError("root ::= \"a\"{2000}", "over the limit");
  ExpectError("root ::= ( \"a\" ", "unclosed '('");
  ExpectError("root ::= \"a\"\nroot ::= \"b\"", "defined twice");
  ExpectError("start ::= \"a\"", "no rule named 'root'");
  ExpectError("root ::= \"a\" ) ", "line 1 column 14: expected a rule name");
  ExpectError("", "no rules");
  ExpectError("root ::= \"a\"**", "after another one");
  ExpectError("root ::= [z-a]", "below its start");
}

TEST(GbnfParser, GrammarAcceptingNothingIsAnError) {
  ExpectError(R"(root ::= [^\x00-\U0010FFFF])", "accepts no string");
  ExpectError("root ::= a\na ::= \"x\" a", "accepts no string");  // no way out of the recursion
}

TEST(GbnfParser, NestingLimit) {
  std::string deep = "root ::= ";
  for (int i = 0; i < 100; ++i) deep += "(";
  deep += "\"a\"";
  for (int i = 0; i < 100; ++i) deep += ")";
  ExpectError(deep, "nested deeper than");
}

TEST(GbnfParser, UnproductiveAlternativesAreDroppedSoNothingDeadEnds) {
  // "b" leads into a rule with no way out: the matcher must not take it.
  const Grammar g = Parse("root ::= \"a\" | \"b\" loop\nloop ::= \"c\" loop");
  GrammarMatcher m(std::make_shared<const Grammar>(g));
  EXPECT_FALSE(m.AcceptByte('b'));
  EXPECT_TRUE(m.AcceptByte('a'));
  EXPECT_TRUE(m.IsAccepting());
}

TEST(GbnfLiteral, RoundTrips) {
  const std::string text = "q\"\\\n\x01é";
  EXPECT_TRUE(Matches(Parse("root ::= " + GbnfLiteral(text)), text));
}

}  // namespace
}  // namespace pagoda::structured
