#include "structured/grammar_matcher.h"

#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "structured/gbnf_parser.h"

namespace pagoda::structured {
namespace {

std::shared_ptr<const Grammar> Parse(const std::string& gbnf) {
  absl::StatusOr<Grammar> g = ParseGbnf(gbnf);
  EXPECT_TRUE(g.ok()) << g.status();
  return std::make_shared<const Grammar>(*std::move(g));
}

bool Matches(const std::shared_ptr<const Grammar>& g, const std::string& text) {
  GrammarMatcher m(g);
  return m.AcceptString(text) && m.IsAccepting();
}

TEST(GrammarMatcher, AcceptsExactlyTheLanguage) {
  auto g = Parse(R"(root ::= "a" b* "c" | "x"+
                    b ::= "b" | "bb")");
  EXPECT_TRUE(Matches(g, "ac"));
  EXPECT_TRUE(Matches(g, "abbbc"));
  EXPECT_TRUE(Matches(g, "xxx"));
  EXPECT_FALSE(Matches(g, "a"));
  EXPECT_FALSE(Matches(g, "axc"));
  EXPECT_FALSE(Matches(g, ""));
}

TEST(GrammarMatcher, RollbackRestoresTheState) {
  auto g = Parse(R"(root ::= "ab" [0-9]{2,3} "!")");
  GrammarMatcher m(g);
  ASSERT_TRUE(m.AcceptString("ab"));
  ASSERT_TRUE(m.AcceptByte('1'));
  ASSERT_TRUE(m.AcceptByte('2'));
  EXPECT_FALSE(m.AcceptByte('x'));
  EXPECT_EQ(m.num_steps(), 3);
  m.Rollback(2);
  EXPECT_FALSE(m.AcceptString("1!"));
  EXPECT_TRUE(m.AcceptString("123!"));
  EXPECT_TRUE(m.IsAccepting());
  EXPECT_FALSE(m.CanAcceptMore());
}

}  // namespace
}  // namespace pagoda::structured
