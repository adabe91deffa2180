#include "structured/token_vocabulary.h"

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "common/tokenizer/tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/stories260k.h"

namespace pagoda::structured {
namespace {

TEST(TokenVocabulary, TrieIsThePreorderOfTheSortedTokens) {
  auto vocab = TokenVocabulary::Create({"", "ab", "a", "b", "ab", "abc", "", "ba"}, {0}, "t");
  ASSERT_TRUE(vocab.ok()) << vocab.status();
  const TokenVocabulary& v = **vocab;
  std::vector<std::string> preorder;
  std::vector<std::vector<int32_t>> ids;
  std::string path;
  // Rebuild every node's string from the trie and check that the subtrees nest.
  std::vector<int32_t> stack = {0};
  for (int32_t node = 1; node < v.num_trie_nodes(); ++node) {
    while (v.trie_end(stack.back()) <= node) {
      stack.pop_back();
      path.pop_back();
    }
    ASSERT_LE(v.trie_end(node), v.trie_end(stack.back()));
    path += static_cast<char>(v.trie_byte(node));
    stack.push_back(node);
    if (!v.trie_tokens(node).empty()) {
      preorder.push_back(path);
      ids.emplace_back(v.trie_tokens(node).begin(), v.trie_tokens(node).end());
    }
  }
  EXPECT_THAT(preorder, ::testing::ElementsAre("a", "ab", "abc", "b", "ba"));
  EXPECT_THAT(ids, ::testing::ElementsAre(std::vector<int32_t>{2}, std::vector<int32_t>{1, 4},
                                          std::vector<int32_t>{5}, std::vector<int32_t>{3},
                                          std::vector<int32_t>{7}));
  EXPECT_EQ(v.bitmask_words(), 1);
  // Below the root: everything; below "a": "ab" (twice) and "abc", whose bytes are b and c.
  EXPECT_THAT(v.trie_tokens_below(0), ::testing::ElementsAre(2, 1, 4, 5, 3, 7));
  EXPECT_THAT(v.trie_tokens_below(1), ::testing::ElementsAre(1, 4, 5));
  ByteSet bc;
  bc.Add('b');
  bc.Add('c');
  EXPECT_EQ(v.trie_bytes_below(1), bc);
  EXPECT_TRUE(v.trie_bytes_below(0).ContainsAll(bc));
  EXPECT_FALSE(bc.ContainsAll(v.trie_bytes_below(0)));
  EXPECT_FALSE(TokenVocabulary::Create({"a"}, {3}, "t").ok());
  EXPECT_FALSE(TokenVocabulary::Create({}, {}, "t").ok());
}

// A SentencePiece-style vocabulary (byte fallback, "▁" for spaces): each token's bytes are what
// it adds to a decoded continuation, so the grammar sees exactly the text the client gets (but
// for the leading space the decoder strips at the very start of a text).
TEST(TokenVocabulary, FromTokenizerGivesEachTokensContinuationBytes) {
  auto tokenizer = Tokenizer::FromDirectory(testing::Stories260KDir());
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  const Tokenizer& tok = **tokenizer;
  const std::vector<int32_t> stops = EosTokenIds({}, tok);
  auto vocab = TokenVocabulary::FromTokenizer(tok, stops, "stories260K");
  ASSERT_TRUE(vocab.ok()) << vocab.status();
  for (int32_t id : stops) EXPECT_EQ((*vocab)->token_bytes(id), "");
  if (tok.bos_token_id()) {
    EXPECT_EQ((*vocab)->token_bytes(*tok.bos_token_id()), "");
  }
  for (const testing::GoldenCase& golden : testing::LoadStories260KGoldens()) {
    std::vector<int32_t> all = golden.prompt_ids;
    std::string continuation;
    for (int32_t id : golden.greedy_ids) {
      if (std::find(stops.begin(), stops.end(), id) != stops.end()) break;
      all.push_back(id);
      continuation += (*vocab)->token_bytes(id);
    }
    const std::string prompt = tok.Decode(golden.prompt_ids, /*skip_special_tokens=*/true);
    const std::string text = tok.Decode(all, /*skip_special_tokens=*/true);
    ASSERT_EQ(text.substr(0, prompt.size()), prompt);
    // At the very start of the text the decoder strips the first token's leading space.
    if (prompt.empty() && !continuation.empty() && continuation[0] == ' ') continuation.erase(0, 1);
    EXPECT_EQ(continuation, text.substr(prompt.size())) << golden.prompt;
  }
}

}  // namespace
}  // namespace pagoda::structured
