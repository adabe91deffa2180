#include "structured/grammar_matcher.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

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

// Every string over `alphabet` up to `depth` bytes that the matcher accepts, with "$" marking
// where IsAccepting held: the matcher's behaviour as far as `depth` can tell.
std::vector<std::string> Behaviour(GrammarMatcher& m, const std::string& alphabet, int depth) {
  std::vector<std::string> out;
  if (m.IsAccepting()) out.push_back("$");
  if (depth == 0) return out;
  for (char c : alphabet) {
    if (!m.AcceptByte(static_cast<uint8_t>(c))) continue;
    for (const std::string& rest : Behaviour(m, alphabet, depth - 1)) out.push_back(c + rest);
    m.Rollback(1);
  }
  return out;
}

// Signature is what CompiledGrammar memoizes its walks on: equal signatures must mean equal
// futures, and charts that differ only in history (how long a repetition ran so far, which
// earlier sets hold what) must get equal signatures, or nothing is shared.
TEST(GrammarMatcher, EqualSignaturesBehaveAlike) {
  auto g = Parse(R"g(root ::= "[" item ("," item)* "]" | "x"{0,5} "y"
                     item ::= [a-c]+ | "(" root ")")g");
  const std::string alphabet = "[],abc()xy";
  std::map<std::vector<int32_t>, std::vector<std::string>> behaviour;
  std::map<std::vector<int32_t>, std::string> first_prefix;
  int checked = 0;
  std::vector<std::string> prefixes = {""};
  for (size_t i = 0; i < prefixes.size(); ++i) {
    GrammarMatcher m(g);
    ASSERT_TRUE(m.AcceptString(prefixes[i]));
    std::vector<int32_t> signature;
    m.Signature(&signature);
    const std::vector<std::string> b = Behaviour(m, alphabet, 4);
    auto [it, inserted] = behaviour.try_emplace(signature, b);
    if (inserted) {
      first_prefix[signature] = prefixes[i];
    } else {
      EXPECT_EQ(it->second, b) << "'" << prefixes[i] << "' and '" << first_prefix[signature]
                               << "' have one signature";
      ++checked;
    }
    if (prefixes[i].size() < 5) {
      for (char c : alphabet) {
        if (!m.AcceptByte(static_cast<uint8_t>(c))) continue;
        prefixes.push_back(prefixes[i] + c);
        m.Rollback(1);
      }
    }
  }
  EXPECT_GT(checked, 20);
  // Inside a `[a-c]+` run the state repeats; in `"x"{0,5}` each count is its own state.
  const auto signature_of = [&](const std::string& text) {
    GrammarMatcher m(g);
    EXPECT_TRUE(m.AcceptString(text));
    std::vector<int32_t> signature;
    m.Signature(&signature);
    return signature;
  };
  EXPECT_EQ(signature_of("[ab"), signature_of("[abcab"));
  EXPECT_EQ(signature_of("[a,b"), signature_of("[a,c"));
  EXPECT_NE(signature_of("[a"), signature_of("[a,b"));  // at depth 4: ",a]]" vs "]" ...
  EXPECT_NE(signature_of("xx"), signature_of("xxx"));
}

}  // namespace
}  // namespace pagoda::structured
