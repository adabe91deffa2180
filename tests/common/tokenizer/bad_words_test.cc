// Checks vLLM's tokenization of bad_words: each word as is and with a leading space, the spaced
// form kept only where the tokenizer tells the two apart.
#include "common/tokenizer/bad_words.h"

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/tokenizer/llama2c_tokenizer.h"
#include "common/tokenizer/tokenizer.h"
#include "gtest/gtest.h"

namespace pagoda {
namespace {

using Ids = std::vector<std::vector<int32_t>>;

// Encodes by table; records the texts it was asked for and whether special tokens were wanted.
class TableTokenizer final : public Tokenizer {
 public:
  explicit TableTokenizer(std::map<std::string, std::vector<int32_t>> table)
      : table_(std::move(table)) {}

  std::vector<int32_t> Encode(std::string_view text, bool add_special_tokens) const override {
    encoded.emplace_back(text);
    if (add_special_tokens) special_tokens_asked = true;
    auto it = table_.find(std::string(text));
    return it == table_.end() ? std::vector<int32_t>{} : it->second;
  }
  std::string Decode(const std::vector<int32_t>&, bool) const override { return ""; }
  int64_t vocab_size() const override { return 100; }
  std::optional<std::string> IdToToken(int32_t) const override { return std::nullopt; }
  std::optional<int32_t> TokenToId(std::string_view) const override { return std::nullopt; }
  bool IsSpecial(int32_t) const override { return false; }
  std::optional<int32_t> bos_token_id() const override { return std::nullopt; }
  std::optional<int32_t> eos_token_id() const override { return std::nullopt; }
  const std::string& chat_template() const override { return empty_; }

  mutable std::vector<std::string> encoded;
  mutable bool special_tokens_asked = false;

 private:
  std::map<std::string, std::vector<int32_t>> table_;
  std::string empty_;
};

TEST(BadWordsTokenIds, KeepsTheSpacedFormOnlyWhereTheTokenizerTellsItApart) {
  const TableTokenizer tokenizer({
      {"dog", {10}},           // byte-level BPE: "dog" and " dog" are different tokens
      {" dog", {11}},          //
      {"hot dog", {12, 11}},   // two tokens either way, first ones differ
      {" hot dog", {13, 11}},  //
      {"cat", {20}},           // a tokenizer that adds its own space marker: " cat" starts
      {" cat", {20}},          // with the same token ...
      {"fish", {30}},          // ... or takes one more token for the space
      {" fish", {31, 30}},     //
      {"bird", {40}},          // the spaced form encodes to nothing
  });
  EXPECT_EQ(BadWordsTokenIds({"dog", "hot dog", "cat", "fish", "bird"}, tokenizer),
            (Ids{{10}, {11}, {12, 11}, {13, 11}, {20}, {30}, {40}}));
  EXPECT_FALSE(tokenizer.special_tokens_asked);
}

TEST(BadWordsTokenIds, StripsLeadingWhitespaceAndSkipsWordsWithoutTokens) {
  const TableTokenizer tokenizer({{"dog", {10}}, {" dog", {11}}});
  EXPECT_EQ(BadWordsTokenIds({"  \tdog"}, tokenizer), (Ids{{10}, {11}}));
  EXPECT_EQ(tokenizer.encoded, (std::vector<std::string>{"dog", " dog"}));
  // Nothing to ban: only whitespace (SamplingParams::Validate refuses it), or no tokens.
  EXPECT_EQ(BadWordsTokenIds({" \n", "unknown"}, tokenizer), Ids{});
  EXPECT_EQ(BadWordsTokenIds({}, tokenizer), Ids{});
}

// stories260K's SentencePiece-style tokenizer prepends "▁" itself: one sequence a word, the one
// that bans the word after a space (as the text continues it).
TEST(BadWordsTokenIds, SentencePieceTokenizerGivesOneSequenceAWord) {
  const std::string dir = std::string(PAGODA_SHARED_DIR) + "/models/stories260K";
  absl::StatusOr<Llama2cVocab> vocab = ReadLlama2cTokenizer(dir + "/tok512.bin", 512);
  ASSERT_TRUE(vocab.ok()) << vocab.status();
  absl::StatusOr<HfTokenizerFiles> files = ConvertLlama2cTokenizer(*vocab, 512);
  ASSERT_TRUE(files.ok()) << files.status();
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer =
      Tokenizer::FromJson(files->tokenizer_json, files->tokenizer_config_json, "stories260K");
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  for (const std::string word : {"there", "little girl"}) {
    const Ids ids = BadWordsTokenIds({word}, **tokenizer);
    ASSERT_EQ(ids.size(), 1u) << word;
    EXPECT_EQ(ids[0], (*tokenizer)->Encode(word, /*add_special_tokens=*/false)) << word;
    // The word after a space: its first piece starts with the space marker.
    EXPECT_EQ((*tokenizer)->IdToToken(ids[0][0]).value_or("").rfind("\u2581", 0), 0u) << word;
    EXPECT_EQ((*tokenizer)->Decode(ids[0], true), word);
  }
}

}  // namespace
}  // namespace pagoda
