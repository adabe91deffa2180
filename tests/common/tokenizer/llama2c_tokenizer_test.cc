// Checks the llama2.c tokenizer reader and its conversion to tokenizer.json: the converted
// tokenizer must encode exactly like llama2.c's own encode(), ported below as the reference.
#include "common/tokenizer/llama2c_tokenizer.h"

#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/file_util.h"
#include "common/tokenizer/tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace pagoda {
namespace {

using ::testing::HasSubstr;

const std::string kStoriesDir = std::string(PAGODA_SHARED_DIR) + "/models/stories260K";

// llama2.c's encode() (run.c), with bos and no eos: dummy-prefix space, per-UTF-8-character
// lookup with byte fallback (+3), then merge the best-scoring adjacent pair, leftmost on ties.
class Llama2cReferenceEncoder {
 public:
  explicit Llama2cReferenceEncoder(const Llama2cVocab& vocab) : vocab_(vocab) {
    for (size_t i = 0; i < vocab.pieces.size(); ++i) {
      lookup_.emplace(vocab.pieces[i], static_cast<int>(i));  // first wins, as llama2.c's bsearch
    }
  }

  std::vector<int> Encode(const std::string& text) const {
    std::vector<int> tokens = {1};
    if (!text.empty()) tokens.push_back(Lookup(" "));
    std::string buffer;
    for (size_t i = 0; i < text.size(); ++i) {
      const unsigned char c = static_cast<unsigned char>(text[i]);
      if ((c & 0xC0) != 0x80) buffer.clear();
      buffer.push_back(static_cast<char>(c));
      const bool next_is_continuation =
          i + 1 < text.size() && (static_cast<unsigned char>(text[i + 1]) & 0xC0) == 0x80;
      if (next_is_continuation && buffer.size() < 4) continue;
      const int id = Lookup(buffer);
      if (id != -1) {
        tokens.push_back(id);
      } else {
        for (char b : buffer) tokens.push_back(static_cast<unsigned char>(b) + 3);
      }
      buffer.clear();
    }
    while (true) {
      float best_score = -1e10f;
      int best_id = -1;
      int best_index = -1;
      for (size_t i = 0; i + 1 < tokens.size(); ++i) {
        const int id = Lookup(vocab_.pieces[tokens[i]] + vocab_.pieces[tokens[i + 1]]);
        if (id != -1 && vocab_.scores[id] > best_score) {
          best_score = vocab_.scores[id];
          best_id = id;
          best_index = static_cast<int>(i);
        }
      }
      if (best_index == -1) break;
      tokens[best_index] = best_id;
      tokens.erase(tokens.begin() + best_index + 1);
    }
    return tokens;
  }

 private:
  int Lookup(const std::string& piece) const {
    const auto it = lookup_.find(piece);
    return it == lookup_.end() ? -1 : it->second;
  }
  const Llama2cVocab& vocab_;
  absl::flat_hash_map<std::string, int> lookup_;
};

class Llama2cStoriesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto vocab = ReadLlama2cTokenizer(kStoriesDir + "/tok512.bin", 512);
    ASSERT_TRUE(vocab.ok()) << vocab.status();
    vocab_ = std::move(vocab).value();
    auto files = ConvertLlama2cTokenizer(vocab_, 512);
    ASSERT_TRUE(files.ok()) << files.status();
    files_ = std::move(files).value();
    auto tokenizer =
        Tokenizer::FromJson(files_.tokenizer_json, files_.tokenizer_config_json, "converted");
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    tokenizer_ = std::move(tokenizer).value();
  }

  std::vector<int> Encode(const std::string& text) const {
    const std::vector<int32_t> ids = tokenizer_->Encode(text);
    return std::vector<int>(ids.begin(), ids.end());
  }

  Llama2cVocab vocab_;
  HfTokenizerFiles files_;
  std::unique_ptr<Tokenizer> tokenizer_;
};

TEST_F(Llama2cStoriesTest, ReadsAllTokens) {
  EXPECT_EQ(vocab_.max_token_length, 7);
  ASSERT_EQ(vocab_.pieces.size(), 512u);
  EXPECT_EQ(vocab_.pieces[3], "<0x00>");
  EXPECT_EQ(vocab_.pieces[259], " t");
  EXPECT_EQ(tokenizer_->vocab_size(), 512);
  EXPECT_EQ(tokenizer_->bos_token_id(), 1);
  EXPECT_EQ(tokenizer_->eos_token_id(), 2);
  EXPECT_EQ(tokenizer_->IdToToken(259), "▁t");
  EXPECT_TRUE(tokenizer_->IsSpecial(1));
}

TEST_F(Llama2cStoriesTest, WritesLlamaStyleConfig) {
  const nlohmann::json config = nlohmann::json::parse(files_.tokenizer_config_json);
  EXPECT_EQ(config.at("add_bos_token"), true);
  EXPECT_EQ(config.at("add_eos_token"), false);
  EXPECT_EQ(config.at("bos_token"), "<s>");
  EXPECT_EQ(config.at("eos_token"), "</s>");
  EXPECT_EQ(config.at("unk_token"), "<unk>");
  EXPECT_EQ(config.at("model_max_length"), 512);
  const nlohmann::json tokenizer = nlohmann::json::parse(files_.tokenizer_json);
  EXPECT_EQ(tokenizer.at("model").at("byte_fallback"), true);
  EXPECT_EQ(tokenizer.at("model").at("vocab").at("<0x0A>"), 13);
  EXPECT_EQ(tokenizer.at("model").at("vocab").at("▁"), 410);
}

TEST_F(Llama2cStoriesTest, EncodesGoldenPromptsExactly) {
  auto golden = ReadFileToString(kStoriesDir + "/golden_greedy.jsonl");
  ASSERT_TRUE(golden.ok()) << golden.status();
  std::istringstream lines(*golden);
  int checked = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.empty()) continue;
    const nlohmann::json record = nlohmann::json::parse(line);
    const std::string prompt = record.at("prompt").get<std::string>();
    const auto expected = record.at("prompt_ids").get<std::vector<int>>();
    EXPECT_EQ(Encode(prompt), expected) << prompt;
    EXPECT_EQ(Llama2cReferenceEncoder(vocab_).Encode(prompt), expected) << prompt;
    ++checked;
  }
  EXPECT_EQ(checked, 4);
}

std::vector<std::string> VariedTexts() {
  const std::vector<std::string> words = {
      "Once",   "upon",   "a",         "time",      "there",    "was",     "little",  "girl",
      "named",  "Lily",   "She",       "loved",     "to",       "play",    "outside", "in",
      "the",    "park",   "One",       "day",       "she",      "saw",     "big",     "red",
      "ball",   "wanted", "with",      "it",        "but",      "too",     "high",    "mom",
      "said",   "Tom",    "They",      "box",       "Look",     "Let's",   "go",      "happy",
      "sad",    "dog",    "cat",       "tree",      "sun",      "friends", "Ben",     "Sue",
      "jumped", "ran",    "quickly",   "together",  "everyone", "wasn't",  "didn't",  "THE",
      "Park",   "lILY",   "xylophone", "quizzical", "zebra",    "Mia's",   "they'll", "I'm"};
  const std::vector<std::string> extras = {
      ",",  ".",        "!",      "?",      "\"",   "'",        ":",
      ";",  "-",        "(",      ")",      "[",    "]",        "~",
      "0",  "7",        "42",     "2024",   "3.14", "\n",       "\n\n",
      "\t", "  ",       "   ",    "é",      "café", "naïve",    "Straße",
      "ñ",  "中文",     "日本語", "한국어", "😀",    "👍🏽", "👨‍👩‍👧‍👦",
      "™",  "“quoted”", "it’s",   "—",      "…",    "\r\n"};
  std::mt19937 rng(12345);
  std::vector<std::string> texts = {"",       " ",       "  ",       "a",    "\n",
                                    "Hello!", "the the", " leading", "x  ",  "😀",
                                    "中",     "™™™",     "<0x41>",   "\xC3", "e\xCC\x81"};
  for (int i = 0; i < 400; ++i) {
    std::string text;
    const int n = 1 + static_cast<int>(rng() % 10);
    for (int k = 0; k < n; ++k) {
      if (rng() % 4 == 0) {
        text += extras[rng() % extras.size()];
      } else {
        text += words[rng() % words.size()];
      }
      const int sep = static_cast<int>(rng() % 8);
      text += sep < 5 ? " " : sep == 5 ? "" : sep == 6 ? "  " : "\n";
    }
    if (rng() % 3 == 0) text.pop_back();
    if (rng() % 5 == 0) text = " " + text;
    texts.push_back(text);
  }
  return texts;
}

TEST_F(Llama2cStoriesTest, EncodesLikeLlama2cReference) {
  const Llama2cReferenceEncoder reference(vocab_);
  int mismatches = 0;
  for (const std::string& text : VariedTexts()) {
    const std::string valid = text == "\xC3" ? "\xEF\xBF\xBD" : text;  // what Encode sees
    const std::vector<int> expected = reference.Encode(valid);
    const std::vector<int> actual = Encode(text);
    EXPECT_EQ(actual, expected) << "text: \"" << text << "\"";
    mismatches += actual != expected;
    if (mismatches > 5) break;
  }
}

TEST_F(Llama2cStoriesTest, DecodeOfEncodeIsIdentity) {
  for (const std::string& text : VariedTexts()) {
    if (text == "\xC3") continue;  // invalid UTF-8 comes back as U+FFFD
    EXPECT_EQ(tokenizer_->Decode(tokenizer_->Encode(text), /*skip_special_tokens=*/true), text)
        << "text: \"" << text << "\"";
  }
}

// Builds a .bin in memory.
std::string MakeBin(int32_t max_length, const std::vector<std::pair<float, std::string>>& tokens) {
  std::string bin(reinterpret_cast<const char*>(&max_length), 4);
  for (const auto& [score, piece] : tokens) {
    const int32_t length = static_cast<int32_t>(piece.size());
    bin.append(reinterpret_cast<const char*>(&score), 4);
    bin.append(reinterpret_cast<const char*>(&length), 4);
    bin.append(piece);
  }
  return bin;
}

absl::StatusOr<Llama2cVocab> Parse(const std::string& bin, int64_t vocab_size = -1) {
  return ParseLlama2cTokenizer(
      std::span<const std::byte>(reinterpret_cast<const std::byte*>(bin.data()), bin.size()),
      "tok.bin", vocab_size);
}

TEST(Llama2cTokenizerParse, RejectsTruncatedAndInconsistentFiles) {
  const std::string good = MakeBin(5, {{0, "<unk>"}, {0, "<s>"}, {0, "</s>"}, {-1, "ab"}});
  ASSERT_TRUE(Parse(good).ok());
  EXPECT_EQ(Parse(good)->pieces.size(), 4u);
  EXPECT_EQ(Parse(good, 3)->pieces.size(), 3u);

  const auto expect_error = [](const absl::StatusOr<Llama2cVocab>& result, const char* part) {
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(result.status().message()), HasSubstr("tok.bin"));
    EXPECT_THAT(std::string(result.status().message()), HasSubstr(part));
  };
  expect_error(Parse("ab"), "too short");
  expect_error(Parse(MakeBin(0, {})), "max_token_length");
  expect_error(Parse(good.substr(0, good.size() - 1)), "past the end");
  expect_error(Parse(good.substr(0, good.size() - 5)), "truncated");
  expect_error(Parse(good, 5), "truncated");
  expect_error(Parse(MakeBin(5, {{0, "<unk>"}})), "<unk>, <s>, </s>");
  std::string negative = MakeBin(5, {{0, "<unk>"}, {0, "<s>"}, {0, "</s>"}});
  const int32_t minus_one = -1;
  std::memcpy(&negative[4 + 4], &minus_one, 4);
  expect_error(Parse(negative), "length -1");
}

TEST(Llama2cTokenizerConvert, RejectsMissingByteTokensAndDuplicates) {
  Llama2cVocab vocab;
  vocab.max_token_length = 4;
  vocab.pieces = {"<unk>", "<s>", "</s>", "a", "a"};
  vocab.scores = {0, 0, 0, -1, -2};
  auto duplicate = ConvertLlama2cTokenizer(vocab, 16);
  ASSERT_FALSE(duplicate.ok());
  EXPECT_THAT(std::string(duplicate.status().message()), HasSubstr("'a'"));
  vocab.pieces.back() = "b";
  auto no_bytes = ConvertLlama2cTokenizer(vocab, 16);
  ASSERT_FALSE(no_bytes.ok());
  EXPECT_THAT(std::string(no_bytes.status().message()), HasSubstr("<0x00>"));
}

TEST(Llama2cTokenizerRead, MissingFileIsNotFound) {
  auto vocab = ReadLlama2cTokenizer("/nonexistent/tok.bin");
  ASSERT_FALSE(vocab.ok());
  EXPECT_EQ(vocab.status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace pagoda
