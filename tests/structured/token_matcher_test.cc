#include "structured/token_matcher.h"

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "structured/compiled_grammar.h"
#include "structured/gbnf_parser.h"
#include "structured/grammar_matcher.h"
#include "structured/json_schema_grammar.h"
#include "structured/regex_grammar.h"
#include "tests/structured/toy_vocabulary.h"

namespace pagoda::structured {
namespace {

using ::testing::HasSubstr;
using testing::kToyEos;
using testing::ToyVocabulary;

std::shared_ptr<const Grammar> Share(absl::StatusOr<Grammar> g) {
  EXPECT_TRUE(g.ok()) << g.status();
  return std::make_shared<const Grammar>(*std::move(g));
}

bool Allowed(const std::vector<uint32_t>& mask, int32_t id) {
  return (mask[id >> 5] >> (id & 31)) & 1;
}

// The mask by brute force: every token tried on a matcher of the input grammar (not the
// compiled one, whose rules are copied per use) fed the text so far.
std::vector<uint32_t> ReferenceMask(const std::shared_ptr<const Grammar>& grammar,
                                    const TokenVocabulary& vocab, const std::string& text) {
  std::vector<uint32_t> mask(vocab.bitmask_words(), 0);
  GrammarMatcher m(grammar);
  EXPECT_TRUE(m.AcceptString(text));
  for (int32_t id = 0; id < vocab.size(); ++id) {
    bool ok = false;
    if (id == kToyEos) {
      ok = m.IsAccepting();
    } else if (!vocab.token_bytes(id).empty() && m.AcceptString(vocab.token_bytes(id))) {
      ok = true;
      m.Rollback(1);
    }
    if (ok) mask[id >> 5] |= uint32_t{1} << (id & 31);
  }
  return mask;
}

// Random walks through the mask: every step's mask equals the reference, the walk never dead-ends
// before EOS, and rolling back restores earlier masks.
void WalkAndCompare(std::shared_ptr<const Grammar> grammar, int walks, int max_steps) {
  auto vocab = ToyVocabulary();
  auto compiled = CompiledGrammar::Compile(grammar, vocab).value();
  std::mt19937 rng(7);
  for (int w = 0; w < walks; ++w) {
    TokenMatcher matcher(compiled);
    std::string text;
    std::vector<std::vector<uint32_t>> masks;
    std::vector<std::string> texts;
    std::vector<uint32_t> mask(vocab->bitmask_words());
    for (int step = 0; step < max_steps && !matcher.IsTerminated(); ++step) {
      matcher.FillNextTokenBitmask(absl::MakeSpan(mask));
      ASSERT_EQ(mask, ReferenceMask(grammar, *vocab, text)) << "after '" << text << "'";
      masks.push_back(mask);
      texts.push_back(text);
      std::vector<int32_t> allowed;
      for (int32_t id = 0; id < vocab->size(); ++id) {
        if (Allowed(mask, id)) allowed.push_back(id);
      }
      ASSERT_FALSE(allowed.empty()) << "dead end after '" << text << "'";
      EXPECT_FALSE(Allowed(mask, 1)) << "a special token";
      // Prefer finishing late in the walk.
      int32_t pick = allowed[rng() % allowed.size()];
      if (step > max_steps / 2 && Allowed(mask, kToyEos)) pick = kToyEos;
      ASSERT_TRUE(matcher.AcceptToken(pick));
      if (pick != kToyEos) text += vocab->token_bytes(pick);
    }
    // Roll back to a random earlier step: its mask comes back.
    const int back = 1 + static_cast<int>(rng() % matcher.num_tokens());
    matcher.Rollback(back);
    matcher.FillNextTokenBitmask(absl::MakeSpan(mask));
    EXPECT_EQ(mask, masks[masks.size() - back]) << "rolled back to '" << texts[texts.size() - back];
  }
}

TEST(TokenMatcher, JsonSchemaMasksMatchBruteForce) {
  WalkAndCompare(Share(JsonSchemaToGrammar(R"({"type": "object", "properties": {
      "name": {"type": "string", "maxLength": 6},
      "age": {"type": "integer", "minimum": -5, "maximum": 120},
      "tags": {"type": "array", "items": {"enum": ["a", "日本", "x-"]}, "maxItems": 3},
      "kids": {"type": "array", "items": {"$ref": "#"}}},
    "required": ["name"]})")),
                 /*walks=*/25, /*max_steps=*/40);
}

TEST(TokenMatcher, FreeJsonMasksMatchBruteForce) {
  WalkAndCompare(Share(JsonObjectGrammar({.max_whitespace = 2})), 20, 30);
}

TEST(TokenMatcher, RegexAndGbnfMasksMatchBruteForce) {
  WalkAndCompare(Share(RegexToGrammar(R"([α-ω日本]{1,4}-\d{2,3}(ab|AB)?)")), 20, 12);
  // Ambiguous and left-recursive.
  WalkAndCompare(Share(ParseGbnf(R"g(root ::= expr
expr ::= expr "+" term | term
term ::= [0-9]+ | "(" expr ")" | "ab" | "a" "b"+)g")),
                 20, 20);
}

// A bounded repetition: each remaining length is its own context, and the compile shares the
// states that contexts reach alike (GrammarMatcher::Signature); the masks must still be exact at
// every length, up to the bound and past it.
TEST(TokenMatcher, MaxLengthMasksMatchBruteForceAtEveryLength) {
  auto grammar = Share(JsonSchemaToGrammar(R"({"type": "string", "maxLength": 12})"));
  WalkAndCompare(grammar, /*walks=*/30, /*max_steps=*/16);
  auto vocab = ToyVocabulary();
  auto compiled = CompiledGrammar::Compile(grammar, vocab).value();
  std::vector<uint32_t> mask(vocab->bitmask_words());
  TokenMatcher m(compiled);
  std::string text = "\"";
  ASSERT_TRUE(m.AcceptToken('"' + 2));
  for (int length = 0; length <= 12; ++length) {
    m.FillNextTokenBitmask(absl::MakeSpan(mask));
    ASSERT_EQ(mask, ReferenceMask(grammar, *vocab, text)) << "after " << length << " characters";
    if (length == 12) break;
    ASSERT_TRUE(m.AcceptToken('x' + 2));
    text += 'x';
  }
  EXPECT_FALSE(Allowed(mask, 'x' + 2));
  EXPECT_TRUE(Allowed(mask, '"' + 2));
}

TEST(TokenMatcher, WhitespaceRunsMatchBruteForce) {
  WalkAndCompare(Share(JsonObjectGrammar({.max_whitespace = 6})), 20, 30);
}

TEST(TokenMatcher, MergedTokensSpanStructure) {
  auto vocab = ToyVocabulary();
  auto compiled = CompiledGrammar::Compile(
                      Share(JsonSchemaToGrammar(R"({"type": "array", "items": {"type": "object",
          "properties": {"name": {"type": "string"}}, "required": ["name"]}})",
                                                {.max_whitespace = 0})),
                      vocab)
                      .value();
  const auto id_of = [&](const std::string& bytes) {
    for (int32_t id = 0; id < vocab->size(); ++id) {
      if (vocab->token_bytes(id) == bytes) return id;
    }
    ADD_FAILURE() << "no token " << bytes;
    return -1;
  };
  TokenMatcher m(compiled);
  std::vector<uint32_t> mask(vocab->bitmask_words());
  for (const char* token :
       {"[", "{\"", "name", "\":\"", "ab", "\"},{\"", "name", "\":", "\"", "\xC3\xBC\"", "}]"}) {
    m.FillNextTokenBitmask(absl::MakeSpan(mask));
    EXPECT_TRUE(Allowed(mask, id_of(token))) << token;
    ASSERT_TRUE(m.AcceptToken(id_of(token))) << token;
  }
  m.FillNextTokenBitmask(absl::MakeSpan(mask));
  EXPECT_TRUE(Allowed(mask, kToyEos));
  ASSERT_TRUE(m.AcceptToken(kToyEos));
  EXPECT_TRUE(m.IsTerminated());
  m.FillNextTokenBitmask(absl::MakeSpan(mask));
  EXPECT_EQ(mask, std::vector<uint32_t>(mask.size(), 0));
  EXPECT_FALSE(m.AcceptToken(id_of("[")));
  m.Rollback(1);  // the EOS
  EXPECT_FALSE(m.IsTerminated());
  EXPECT_TRUE(m.IsAccepting());
}

TEST(TokenMatcher, EosOnlyWhenAcceptingAndSpecialTokensNever) {
  auto vocab = ToyVocabulary();
  auto compiled = CompiledGrammar::Compile(Share(ChoiceToGrammar({"yes", "yesno"})), vocab).value();
  TokenMatcher m(compiled);
  EXPECT_FALSE(m.AcceptToken(kToyEos));
  EXPECT_FALSE(m.AcceptToken(1));
  EXPECT_FALSE(m.AcceptToken(vocab->size()));
  std::vector<uint32_t> mask(vocab->bitmask_words());
  for (const char* token : {"y", "e", "s"})
    ASSERT_TRUE(m.AcceptToken(static_cast<uint8_t>(*token) + 2));
  m.FillNextTokenBitmask(absl::MakeSpan(mask));
  EXPECT_TRUE(Allowed(mask, kToyEos));
  EXPECT_TRUE(Allowed(mask, 'n' + 2));
  EXPECT_FALSE(Allowed(mask, 'y' + 2));
}

TEST(CompiledGrammar, MostTokensAreDecidedAhead) {
  auto vocab = ToyVocabulary();
  auto compiled =
      CompiledGrammar::Compile(
          Share(JsonSchemaToGrammar(R"({"type": "object", "properties": {"a": {"type": "string"},
          "b": {"type": "string"}}, "required": ["a", "b"]})")),
          vocab)
          .value();
  EXPECT_GT(compiled->num_accepted(), 0);
  // Only tokens that leave a string and go on into the structure stay for decode time.
  EXPECT_LT(compiled->num_uncertain(), compiled->num_accepted() / 10);
}

TEST(CompiledGrammar, AGrammarOverItsLimitsIsRefusedNamingThem) {
  auto vocab = ToyVocabulary();
  const auto grammar = Share(JsonSchemaToGrammar(
      R"({"type": "object", "properties": {"a": {"type": "string", "maxLength": 40},
          "b": {"type": "string", "maxLength": 40}}, "required": ["a", "b"]})"));
  ASSERT_TRUE(CompiledGrammar::Compile(grammar, vocab).ok());
  const auto bytes = CompiledGrammar::Compile(grammar, vocab, {.max_bytes = 4096});
  EXPECT_EQ(bytes.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bytes.status().message(), HasSubstr("too large to compile"));
  EXPECT_THAT(bytes.status().message(), HasSubstr("more than 4096 bytes"));
  const auto states = CompiledGrammar::Compile(grammar, vocab, {.max_states = 5});
  EXPECT_EQ(states.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(states.status().message(), HasSubstr("more than 5 distinct matcher states"));
}

}  // namespace
}  // namespace pagoda::structured
