// Unit tests of the tokenizer's parts: UTF-8 helpers, regex, normalizers, pre-tokenizers,
// decoders, the BPE model and the added-token splitter. Expected values follow what the
// Hugging Face `tokenizers` package gives for the same configuration.
#include <string>
#include <vector>

#include "common/regex.h"
#include "common/tokenizer/added_vocabulary.h"
#include "common/tokenizer/bpe_model.h"
#include "common/tokenizer/normalizer.h"
#include "common/tokenizer/pre_tokenizer.h"
#include "common/tokenizer/token_decoder.h"
#include "common/unicode_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace pagoda {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;

TEST(Utf8, SanitizeReplacesEachMaximalInvalidSubsequence) {
  EXPECT_EQ(SanitizeUtf8("ok"), "ok");
  EXPECT_EQ(SanitizeUtf8("a\xFF"
                         "b"),
            "a\xEF\xBF\xBD"
            "b");
  // A truncated 3-byte sequence is one replacement; an overlong lead byte is one per byte.
  EXPECT_EQ(SanitizeUtf8("\xE4\xB8"), "\xEF\xBF\xBD");
  EXPECT_EQ(SanitizeUtf8("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(SanitizeUtf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  EXPECT_TRUE(IsValidUtf8("中文😀"));
  EXPECT_FALSE(IsValidUtf8("\xF0\x9F\x98"));
}

TEST(Utf8, ByteTableMatchesGpt2) {
  const ByteUnicodeTable& table = ByteUnicodeTable::Get();
  EXPECT_EQ(table.Encode(' '), "\xC4\xA0");   // Ġ
  EXPECT_EQ(table.Encode('\n'), "\xC4\x8A");  // Ċ
  EXPECT_EQ(table.Encode('a'), "a");
  EXPECT_EQ(table.Decode(0x120), ' ');
  EXPECT_EQ(table.Decode(0x4E2D), -1);
  for (int b = 0; b < 256; ++b) {
    EXPECT_EQ(table.Decode(DecodeUtf8At(table.Encode(static_cast<uint8_t>(b)), 0)), b);
  }
}

TEST(Regex, FindsUnicodeClassesCaseInsensitiveGroupsAndLookahead) {
  auto re = Regex::Compile(R"((?i:'s|'ll)|\p{L}+|\p{N}|\s+(?!\S)|\s+)");
  ASSERT_TRUE(re.ok()) << re.status();
  const std::string text = "IT'S  é1";
  std::vector<std::string> parts;
  for (const Regex::Match& m : (*re)->FindAll(text)) {
    parts.push_back(text.substr(m.begin, m.end - m.begin));
  }
  EXPECT_THAT(parts, ElementsAre("IT", "'S", " ", " ", "é", "1"));
  EXPECT_FALSE(Regex::Compile("(").ok());
}

std::string Normalize(const json& spec, std::string_view text) {
  auto normalizer = Normalizer::FromJson(spec, "test");
  EXPECT_TRUE(normalizer.ok()) << normalizer.status();
  return normalizer.ok() ? (*normalizer)->Normalize(text) : "";
}

TEST(Normalizer, AppliesUnicodeFormsCaseAndStrip) {
  EXPECT_EQ(Normalize({{"type", "NFC"}}, "e\xCC\x81"), "é");
  EXPECT_EQ(Normalize({{"type", "NFD"}}, "é"), "e\xCC\x81");
  EXPECT_EQ(Normalize({{"type", "NFKC"}}, "ﬁ①"), "fi1");
  EXPECT_EQ(Normalize({{"type", "Lowercase"}}, "ÀB İ"), "àb i\xCC\x87");
  EXPECT_EQ(
      Normalize({{"type", "Strip"}, {"strip_left", true}, {"strip_right", false}}, " \t x \n"),
      "x \n");
  EXPECT_EQ(Normalize({{"type", "Sequence"},
                       {"normalizers",
                        {{{"type", "NFD"}}, {{"type", "StripAccents"}}, {{"type", "Lowercase"}}}}},
                      "Éa"),
            "ea");
}

TEST(Normalizer, PrependsToNonEmptyTextAndReplaces) {
  const json llama2 = {{"type", "Sequence"},
                       {"normalizers",
                        {{{"type", "Prepend"}, {"prepend", "▁"}},
                         {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "▁"}}}}};
  EXPECT_EQ(Normalize(llama2, "a b"), "▁a▁b");
  EXPECT_EQ(Normalize(llama2, ""), "");
  EXPECT_EQ(Normalize({{"type", "Replace"}, {"pattern", {{"Regex", "\\s+"}}}, {"content", "_"}},
                      "a  b\tc"),
            "a_b_c");
  EXPECT_EQ(
      Normalize({{"type", "Replace"}, {"pattern", {{"String", "."}}}, {"content", "!"}}, "a.b"),
      "a!b");  // a String pattern is literal
  auto none = Normalizer::FromJson(nullptr, "test");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, nullptr);
}

std::vector<std::string> PreTokenize(const json& spec, const std::string& text) {
  auto pre = PreTokenizer::FromJson(spec, "test");
  EXPECT_TRUE(pre.ok()) << pre.status();
  std::vector<std::string> out;
  if (!pre.ok()) return out;
  for (const PreToken& p : (*pre)->PreTokenize({PreToken{text, true}})) out.push_back(p.text);
  return out;
}

TEST(PreTokenizer, ByteLevelSplitsWithGpt2RegexAndMapsBytes) {
  EXPECT_THAT(PreTokenize({{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}},
                          "hello  world\n\n x"),
              ElementsAre("Ġhello", "Ġ", "Ġworld", "ĊĊ", "Ġx"));
}

TEST(PreTokenizer, ByteLevelAddsPrefixSpaceToEverySplit) {
  const json spec = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"}, {"pattern", {{"Regex", "\\d"}}}, {"behavior", "Isolated"}},
        {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", false}}}}};
  EXPECT_THAT(PreTokenize(spec, "ab1cd 2 e"), ElementsAre("Ġab", "Ġ1", "ĠcdĠ", "Ġ2", "Ġe"));
}

TEST(PreTokenizer, MetaspacePrependsOnlyAtStartWithSchemeFirst) {
  const json spec = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"}, {"pattern", {{"Regex", "\\d"}}}, {"behavior", "Isolated"}},
        {{"type", "Metaspace"},
         {"replacement", "▁"},
         {"prepend_scheme", "first"},
         {"split", false}}}}};
  EXPECT_THAT(PreTokenize(spec, "ab1cd 2 e"), ElementsAre("▁ab", "1", "cd▁", "2", "▁e"));
  EXPECT_THAT(PreTokenize({{"type", "Metaspace"},
                           {"replacement", "▁"},
                           {"prepend_scheme", "first"},
                           {"split", true}},
                          "hello  world"),
              ElementsAre("▁hello", "▁", "▁world"));
}

TEST(PreTokenizer, SplitBehaviorsHandleEmptyMatches) {
  const auto split = [](const char* behavior, bool invert) {
    return json{{"type", "Split"},
                {"pattern", {{"Regex", "a*"}}},
                {"behavior", behavior},
                {"invert", invert}};
  };
  EXPECT_THAT(PreTokenize(split("Removed", false), "baab"), ElementsAre("b", "b"));
  EXPECT_THAT(PreTokenize(split("MergedWithPrevious", false), "baab"), ElementsAre("baa", "b"));
  EXPECT_THAT(PreTokenize(split("Isolated", false), "baab"), ElementsAre("b", "aa", "b"));
  const json dash = {{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"invert", false}};
  json next = dash;
  next["behavior"] = "MergedWithNext";
  EXPECT_THAT(PreTokenize(next, "a-b--c"), ElementsAre("a", "-b", "-", "-c"));
  json contiguous = dash;
  contiguous["behavior"] = "Contiguous";
  EXPECT_THAT(PreTokenize(contiguous, "a-b--c"), ElementsAre("a", "-", "b", "--", "c"));
}

TEST(PreTokenizer, DigitsGroupOrIsolate) {
  EXPECT_THAT(PreTokenize({{"type", "Digits"}, {"individual_digits", false}}, "ab123c4"),
              ElementsAre("ab", "123", "c", "4"));
  EXPECT_THAT(PreTokenize({{"type", "Digits"}, {"individual_digits", true}}, "a12"),
              ElementsAre("a", "1", "2"));
  EXPECT_THAT(PreTokenize({{"type", "Whitespace"}}, "hi, you!"),
              ElementsAre("hi", ",", "you", "!"));
}

std::string Decode(const json& spec, std::vector<std::string> tokens) {
  auto decoder = TokenDecoder::FromJson(spec, "test");
  EXPECT_TRUE(decoder.ok()) << decoder.status();
  if (!decoder.ok()) return "";
  (*decoder)->Decode(tokens);
  std::string out;
  for (const std::string& t : tokens) out += t;
  return out;
}

TEST(TokenDecoder, SentencePieceSequenceStripsOneLeadingSpace) {
  const json spec = {{"type", "Sequence"},
                     {"decoders",
                      {{{"type", "Replace"}, {"pattern", {{"String", "▁"}}}, {"content", " "}},
                       {{"type", "ByteFallback"}},
                       {{"type", "Fuse"}},
                       {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}};
  EXPECT_EQ(Decode(spec, {"▁▁Hi", "<0xE4>", "<0xB8>", "<0xAD>", "▁x"}), " Hi中 x");
  // Byte tokens that split a character come out as raw bytes.
  EXPECT_EQ(Decode(spec, {"▁a", "<0xE4>"}), "a\xE4");
}

TEST(TokenDecoder, MetaspaceDropsReplacementsOfFirstTokenLikeTokenizers) {
  EXPECT_EQ(Decode({{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "always"}},
                   {"▁▁a▁b", "▁c"}),
            "ab c");
  EXPECT_EQ(
      Decode({{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "never"}}, {"▁a"}),
      " a");
}

TEST(TokenDecoder, ByteLevelMapsCharactersBackToBytes) {
  EXPECT_EQ(Decode({{"type", "ByteLevel"}}, {"Hello", "Ġw", "Ċ", "<|eot|>"}), "Hello w\n<|eot|>");
}

std::unique_ptr<BpeModel> MakeBpe(const json& spec) {
  auto model = BpeModel::FromJson(spec, "test");
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? std::move(model).value() : nullptr;
}

std::vector<int32_t> Tokenize(const BpeModel& model, std::string_view word) {
  std::vector<int32_t> ids;
  model.Tokenize(word, ids);
  return ids;
}

TEST(BpeModel, MergesLowestRankFirstLeftmostOnTies) {
  // "aaa" with the merge a+a: the leftmost pair merges first.
  auto model = MakeBpe({{"vocab", {{"a", 0}, {"b", 1}, {"aa", 2}, {"ab", 3}, {"aab", 4}}},
                        {"merges", {"a b", "a a", "aa b"}}});
  ASSERT_NE(model, nullptr);
  EXPECT_THAT(Tokenize(*model, "aaa"), ElementsAre(2, 0));
  // "aab": a+b (rank 0) wins over a+a (rank 1); then nothing merges "a"+"ab".
  EXPECT_THAT(Tokenize(*model, "aab"), ElementsAre(0, 3));
  EXPECT_THAT(Tokenize(*model, "aab"), ElementsAre(0, 3));  // from the cache
}

TEST(BpeModel, ByteFallbackUnknownFusingAndIgnoreMerges) {
  json vocab = {{"<unk>", 0}, {"h", 1}, {"i", 2}, {"hi", 3}, {"hih", 4}};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    vocab[name] = 5 + b;
  }
  auto fallback = MakeBpe(
      {{"vocab", vocab}, {"merges", {"h i"}}, {"byte_fallback", true}, {"unk_token", "<unk>"}});
  ASSERT_NE(fallback, nullptr);
  EXPECT_THAT(Tokenize(*fallback, "hié"), ElementsAre(3, 5 + 0xC3, 5 + 0xA9));
  auto unk =
      MakeBpe({{"vocab", vocab}, {"merges", {"h i"}}, {"unk_token", "<unk>"}, {"fuse_unk", true}});
  ASSERT_NE(unk, nullptr);
  EXPECT_THAT(Tokenize(*unk, "héé"), ElementsAre(1, 0));
  auto ignore = MakeBpe({{"vocab", vocab}, {"merges", {"h i"}}, {"ignore_merges", true}});
  ASSERT_NE(ignore, nullptr);
  EXPECT_THAT(Tokenize(*ignore, "hih"), ElementsAre(4));
  EXPECT_THAT(Tokenize(*ignore, "hii"), ElementsAre(3, 2));
}

TEST(BpeModel, ContinuingSubwordPrefixAndEndOfWordSuffix) {
  auto model = MakeBpe({{"vocab", {{"u", 0}, {"##n", 1}, {"un", 2}, {"a", 3}, {"b</w>", 4}}},
                        {"merges", {"u ##n"}},
                        {"continuing_subword_prefix", "##"},
                        {"end_of_word_suffix", nullptr}});
  ASSERT_NE(model, nullptr);
  EXPECT_THAT(Tokenize(*model, "un"), ElementsAre(2));
  auto suffix = MakeBpe({{"vocab", {{"a", 0}, {"b</w>", 1}}},
                         {"merges", json::array()},
                         {"end_of_word_suffix", "</w>"}});
  ASSERT_NE(suffix, nullptr);
  EXPECT_THAT(Tokenize(*suffix, "ab"), ElementsAre(0, 1));
}

std::vector<std::pair<std::string, int32_t>> SplitAdded(const std::vector<AddedToken>& tokens,
                                                        std::string_view text) {
  AddedVocabulary added(tokens, nullptr);
  std::vector<std::pair<std::string, int32_t>> out;
  for (const auto& piece : added.SplitRaw(text)) out.emplace_back(piece.text, piece.id);
  return out;
}

TEST(AddedVocabulary, MatchesLongestFirstAndHonoursStripAndSingleWord) {
  std::vector<AddedToken> tokens = {{.id = 10, .content = "<a>", .special = true},
                                    {.id = 11, .content = "<a><b>", .special = true}};
  using P = std::pair<std::string, int32_t>;
  EXPECT_THAT(SplitAdded(tokens, "x<a><b>y<a>"),
              ElementsAre(P{"x", -1}, P{"<a><b>", 11}, P{"y", -1}, P{"<a>", 10}));
  std::vector<AddedToken> strip = {{.id = 5, .content = "[T]", .lstrip = true, .rstrip = true}};
  EXPECT_THAT(SplitAdded(strip, "a  [T]  b"), ElementsAre(P{"a", -1}, P{"  [T]  ", 5}, P{"b", -1}));
  std::vector<AddedToken> word = {{.id = 7, .content = "cat", .single_word = true}};
  EXPECT_THAT(SplitAdded(word, "cats cat"), ElementsAre(P{"cats ", -1}, P{"cat", 7}));
}

}  // namespace
}  // namespace pagoda
