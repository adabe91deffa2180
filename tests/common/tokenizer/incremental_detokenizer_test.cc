// Checks IncrementalDetokenizer against full decodes with the real stories260K tokenizer
// (SentencePiece, byte fallback) and the Hugging Face fixtures (byte-level BPE, Metaspace):
// the streamed deltas must concatenate to Decode(prompt + output) minus Decode(prompt).
#include "common/tokenizer/incremental_detokenizer.h"

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/tokenizer/llama2c_tokenizer.h"
#include "common/tokenizer/tokenizer.h"
#include "common/unicode_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pagoda {
namespace {

using ::testing::IsEmpty;

constexpr char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD

std::unique_ptr<Tokenizer> LoadStories() {
  auto vocab =
      ReadLlama2cTokenizer(std::string(PAGODA_SHARED_DIR) + "/models/stories260K/tok512.bin", 512);
  EXPECT_TRUE(vocab.ok()) << vocab.status();
  if (!vocab.ok()) return nullptr;
  auto files = ConvertLlama2cTokenizer(*vocab, 512);
  EXPECT_TRUE(files.ok()) << files.status();
  if (!files.ok()) return nullptr;
  auto tokenizer = Tokenizer::FromJson(files->tokenizer_json, files->tokenizer_config_json,
                                       "stories260K tok512.bin");
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return tokenizer.ok() ? std::move(tokenizer).value() : nullptr;
}

std::unique_ptr<Tokenizer> LoadFixture(const std::string& name) {
  auto tokenizer = Tokenizer::FromDirectory(std::string(PAGODA_TEST_DATA_DIR) + "/" + name);
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return tokenizer.ok() ? std::move(tokenizer).value() : nullptr;
}

std::unique_ptr<Tokenizer> Load(const std::string& name) {
  return name == "stories260K" ? LoadStories() : LoadFixture(name);
}

std::vector<int32_t> Concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// What streaming must reproduce: the full decode with the prompt's decode removed.
std::string Reference(const Tokenizer& tok, const std::vector<int32_t>& prompt,
                      const std::vector<int32_t>& output, bool skip_special_tokens) {
  const std::string prompt_text = tok.Decode(prompt, skip_special_tokens);
  const std::string full_text = tok.Decode(Concat(prompt, output), skip_special_tokens);
  EXPECT_EQ(full_text.substr(0, prompt_text.size()), prompt_text);
  return full_text.substr(std::min(prompt_text.size(), full_text.size()));
}

// Streams `output` in chunks of `chunk_sizes` (cycled); every delta must be valid UTF-8.
std::vector<std::string> Stream(const Tokenizer& tok, const std::vector<int32_t>& prompt,
                                const std::vector<int32_t>& output, bool skip_special_tokens,
                                const std::vector<size_t>& chunk_sizes = {1}) {
  IncrementalDetokenizer detok(tok, prompt, skip_special_tokens);
  std::vector<std::string> deltas;
  for (size_t i = 0, c = 0; i < output.size(); ++c) {
    const size_t n = std::min(chunk_sizes[c % chunk_sizes.size()], output.size() - i);
    deltas.push_back(detok.Append(std::span<const int32_t>(output).subspan(i, n)));
    EXPECT_TRUE(IsValidUtf8(deltas.back())) << deltas.back();
    EXPECT_LE(detok.prefix_window_size(), 1u);
    i += n;
  }
  deltas.push_back(detok.Finish());
  EXPECT_TRUE(IsValidUtf8(deltas.back()));
  EXPECT_EQ(detok.num_output_tokens(), static_cast<int64_t>(output.size()));
  return deltas;
}

std::string Join(const std::vector<std::string>& deltas) {
  std::string text;
  for (const std::string& d : deltas) text += d;
  return text;
}

const char* const kMixedTexts[] = {
    "Once upon a time, there was a little girl named Lily.",
    "  leading spaces and   inner   runs ",
    "Tom said: \"Hi!\" 123 + 4.5 = ?",
    "naïve café – déjà vu",
    "你好，世界。小猫在睡觉",
    "emoji 🙂🎉 and flags 🇫🇷 in a story 🐱",
    "mixed: Ωmega ж 한국어 עברית 🙂x",
    "\ttabs\nnew lines\n\n",
};

class DetokenizerTest : public ::testing::TestWithParam<std::string> {};

TEST_P(DetokenizerTest, EncodedMixedTextsStreamLikeTheFullDecode) {
  std::unique_ptr<Tokenizer> tok = Load(GetParam());
  ASSERT_NE(tok, nullptr);
  for (const char* text : kMixedTexts) {
    const std::vector<int32_t> ids = tok->Encode(text, /*add_special_tokens=*/true);
    for (size_t split = 0; split < ids.size(); ++split) {
      const std::vector<int32_t> prompt(ids.begin(), ids.begin() + split);
      const std::vector<int32_t> output(ids.begin() + split, ids.end());
      for (bool skip : {true, false}) {
        const std::string reference = Reference(*tok, prompt, output, skip);
        if (!IsValidUtf8(reference)) continue;  // the prompt ended inside a character
        SCOPED_TRACE(::testing::Message()
                     << "text \"" << text << "\" split " << split << " skip " << skip);
        EXPECT_EQ(Join(Stream(*tok, prompt, output, skip)), reference);
        EXPECT_EQ(Join(Stream(*tok, prompt, output, skip, {3, 1, 2})), reference);
      }
    }
  }
}

TEST_P(DetokenizerTest, RandomTokenSequencesStreamLikeTheFullDecode) {
  std::unique_ptr<Tokenizer> tok = Load(GetParam());
  ASSERT_NE(tok, nullptr);
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> any_id(0, static_cast<int32_t>(tok->vocab_size() - 1));
  int valid_references = 0;
  for (int trial = 0; trial < 1500; ++trial) {
    std::vector<int32_t> prompt(rng() % 6);
    std::vector<int32_t> output(1 + rng() % 24);
    for (int32_t& id : prompt) id = any_id(rng);
    for (int32_t& id : output) id = any_id(rng);
    const bool skip = rng() % 2 == 0;
    const std::vector<size_t> chunks = {1 + rng() % 3, 1 + rng() % 3};
    const std::string reference = Reference(*tok, prompt, output, skip);
    const std::string streamed = Join(Stream(*tok, prompt, output, skip, chunks));
    SCOPED_TRACE(::testing::Message() << "trial " << trial);
    // Bytes that never form a character come out as U+FFFD, as Python's errors="replace".
    EXPECT_EQ(streamed, SanitizeUtf8(reference));
    if (IsValidUtf8(reference)) {
      ++valid_references;
      EXPECT_EQ(streamed, reference);
    }
  }
  EXPECT_GT(valid_references, 100);
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, DetokenizerTest,
                         ::testing::Values("stories260K", "bytelevel_tokenizer", "gpt2_tokenizer",
                                           "metaspace_tokenizer", "llama2_tokenizer"));

TEST(IncrementalDetokenizer, KeepsSentencePieceLeadingSpaces) {
  std::unique_ptr<Tokenizer> tok = LoadStories();
  ASSERT_NE(tok, nullptr);
  const std::vector<int32_t> prompt = tok->Encode("Once upon a", true);
  const std::vector<int32_t> ids = tok->Encode("Once upon a time there", true);
  ASSERT_EQ(std::vector<int32_t>(ids.begin(), ids.begin() + prompt.size()), prompt);
  const std::vector<int32_t> output(ids.begin() + prompt.size(), ids.end());
  // Decoding a token alone strips its "▁"; the streamed text keeps it.
  EXPECT_EQ(tok->Decode({output[0]}, true), "time");
  EXPECT_EQ(Join(Stream(*tok, prompt, output, true)), " time there");
  // After only BOS the first word's space is stripped, exactly as the full decode does.
  const std::vector<int32_t> bos = {*tok->bos_token_id()};
  const std::vector<int32_t> words(ids.begin() + 1, ids.end());
  EXPECT_EQ(Join(Stream(*tok, bos, words, true)), "Once upon a time there");
}

TEST(IncrementalDetokenizer, HoldsByteFallbackCharacterUntilComplete) {
  std::unique_ptr<Tokenizer> tok = LoadStories();
  ASSERT_NE(tok, nullptr);
  // "你" is not in the 512-piece vocabulary: three byte tokens <0xE4> <0xBD> <0xA0>.
  const std::vector<int32_t> ids = tok->Encode("a你", true);
  const std::vector<int32_t> prompt(ids.begin(), ids.begin() + 2);  // <s> ▁a
  ASSERT_EQ(tok->Decode(prompt, true), "a");
  const std::vector<int32_t> output(ids.begin() + 2, ids.end());
  ASSERT_EQ(output.size(), 3u);
  EXPECT_EQ(tok->IdToToken(output[0]), "<0xE4>");

  IncrementalDetokenizer detok(*tok, prompt);
  EXPECT_EQ(detok.Append(output[0]), "");
  EXPECT_EQ(detok.num_held_bytes(), 1u);
  EXPECT_EQ(detok.Append(output[1]), "");
  EXPECT_EQ(detok.num_held_bytes(), 2u);
  EXPECT_EQ(detok.Append(output[2]), "你");
  EXPECT_EQ(detok.num_held_bytes(), 0u);
  EXPECT_EQ(detok.Finish(), "");
}

TEST(IncrementalDetokenizer, ByteLevelTokensSplittingCharactersStreamWholeCharacters) {
  std::unique_ptr<Tokenizer> tok = LoadFixture("gpt2_tokenizer");
  ASSERT_NE(tok, nullptr);
  const std::vector<int32_t> ids = tok->Encode("日本語 🙂 ok", /*add_special_tokens=*/false);
  bool some_token_splits_a_character = false;
  for (int32_t id : ids) some_token_splits_a_character |= !IsValidUtf8(tok->Decode({id}, true));
  ASSERT_TRUE(some_token_splits_a_character);
  const std::vector<std::string> deltas = Stream(*tok, {}, ids, true);
  EXPECT_EQ(Join(deltas), "日本語 🙂 ok");
  for (const std::string& delta : deltas) EXPECT_TRUE(IsValidUtf8(delta));
}

TEST(IncrementalDetokenizer, FinishFlushesAnIncompleteCharacterAsReplacement) {
  std::unique_ptr<Tokenizer> tok = LoadStories();
  ASSERT_NE(tok, nullptr);
  const std::vector<int32_t> ids = tok->Encode("你", false);  // ▁ <0xE4> <0xBD> <0xA0>
  ASSERT_EQ(ids.size(), 4u);
  IncrementalDetokenizer detok(*tok, std::vector<int32_t>{*tok->bos_token_id()});
  EXPECT_EQ(detok.Append(std::vector<int32_t>(ids.begin(), ids.begin() + 3)), "");
  EXPECT_EQ(detok.Finish(), kReplacement);  // one U+FFFD for the maximal invalid E4 BD
  EXPECT_EQ(detok.Finish(), "");
}

TEST(IncrementalDetokenizer, BytesThatCanNeverBeValidAreReplacedAtOnce) {
  std::unique_ptr<Tokenizer> tok = LoadStories();
  ASSERT_NE(tok, nullptr);
  const int32_t continuation = *tok->TokenToId("<0xA0>");
  const int32_t lead = *tok->TokenToId("<0xE4>");
  const int32_t word = tok->Encode("cat", false).back();
  IncrementalDetokenizer detok(*tok, tok->Encode("A", true));
  EXPECT_EQ(detok.Append(continuation), kReplacement);  // a stray continuation byte
  EXPECT_EQ(detok.Append(lead), "");
  EXPECT_EQ(detok.Append(word),
            std::string(kReplacement) + tok->Decode({lead, word}, true).substr(1));
}

TEST(IncrementalDetokenizer, SkipsSpecialTokensOnlyWhenAsked) {
  std::unique_ptr<Tokenizer> tok = LoadFixture("bytelevel_tokenizer");
  ASSERT_NE(tok, nullptr);
  const int32_t eot = *tok->eos_token_id();
  const std::vector<int32_t> prompt = tok->Encode("Hi", true);
  const std::vector<int32_t> word = tok->Encode(" there", false);
  const std::vector<int32_t> output = Concat(Concat(word, {eot, eot}), word);
  EXPECT_EQ(Join(Stream(*tok, prompt, output, true)), " there there");
  EXPECT_EQ(Join(Stream(*tok, prompt, output, false)), " there<|eot_id|><|eot_id|> there");
}

TEST(IncrementalDetokenizer, WindowStaysOneTokenWhenSkippedTokensRepeat) {
  std::unique_ptr<Tokenizer> tok = LoadStories();
  ASSERT_NE(tok, nullptr);
  IncrementalDetokenizer detok(*tok, tok->Encode("The end", true));
  std::string text;
  for (int i = 0; i < 1000; ++i) text += detok.Append(*tok->eos_token_id());  // ignore_eos
  EXPECT_THAT(text, IsEmpty());
  EXPECT_EQ(detok.prefix_window_size(), 1u);
  const std::vector<int32_t> dog = tok->Encode("dog", false);
  EXPECT_EQ(detok.Append(dog), " dog");
  EXPECT_EQ(detok.num_output_tokens(), 1000 + static_cast<int64_t>(dog.size()));
}

TEST(IncrementalDetokenizer, EmptyPromptAndEmptyAppend) {
  std::unique_ptr<Tokenizer> tok = LoadStories();
  ASSERT_NE(tok, nullptr);
  IncrementalDetokenizer detok(*tok, {});
  EXPECT_EQ(detok.Append(std::span<const int32_t>()), "");
  const std::vector<int32_t> ids = tok->Encode("Hello world", false);
  std::vector<std::string> deltas;
  for (int32_t id : ids) deltas.push_back(detok.Append(id));
  EXPECT_EQ(Join(deltas), "Hello world");
}

}  // namespace
}  // namespace pagoda
