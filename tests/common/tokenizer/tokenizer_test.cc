// Checks Pagoda's Tokenizer against ids produced by the Hugging Face `tokenizers` package
// (fixtures written by tests/data/make_tokenizer_fixture.py) and its error handling.
#include "common/tokenizer/tokenizer.h"

#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "common/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace pagoda {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::string DataDir(const std::string& name) {
  return std::string(PAGODA_TEST_DATA_DIR) + "/" + name;
}

std::unique_ptr<Tokenizer> LoadFixture(const std::string& name) {
  auto tokenizer = Tokenizer::FromDirectory(DataDir(name));
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return tokenizer.ok() ? std::move(tokenizer).value() : nullptr;
}

std::vector<nlohmann::json> ReadExpectations(const std::string& name) {
  auto text = ReadFileToString(DataDir(name) + "/expected.jsonl");
  EXPECT_TRUE(text.ok()) << text.status();
  std::vector<nlohmann::json> records;
  std::istringstream lines(text.value_or(""));
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty()) records.push_back(nlohmann::json::parse(line));
  }
  return records;
}

class HuggingFaceFixtureTest : public ::testing::TestWithParam<std::string> {};

TEST_P(HuggingFaceFixtureTest, EncodesAndDecodesExactlyLikeTokenizers) {
  std::unique_ptr<Tokenizer> tokenizer = LoadFixture(GetParam());
  ASSERT_NE(tokenizer, nullptr);
  const std::vector<nlohmann::json> records = ReadExpectations(GetParam());
  ASSERT_GT(records.size(), 50u);
  for (const nlohmann::json& record : records) {
    const std::string text = record.at("text").get<std::string>();
    SCOPED_TRACE("text: \"" + text + "\"");
    const auto ids = record.at("ids").get<std::vector<int32_t>>();
    const auto ids_no_special = record.at("ids_no_special").get<std::vector<int32_t>>();
    EXPECT_EQ(tokenizer->Encode(text, /*add_special_tokens=*/true), ids);
    EXPECT_EQ(tokenizer->Encode(text, /*add_special_tokens=*/false), ids_no_special);
    EXPECT_EQ(tokenizer->Decode(ids_no_special, /*skip_special_tokens=*/false),
              record.at("decoded").get<std::string>());
    EXPECT_EQ(tokenizer->Decode(ids, /*skip_special_tokens=*/true),
              record.at("decoded_skip_special").get<std::string>());
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, HuggingFaceFixtureTest,
                         ::testing::Values("bytelevel_tokenizer", "gpt2_tokenizer",
                                           "metaspace_tokenizer", "llama2_tokenizer"));

TEST(Tokenizer, ReadsSpecialTokensAndChatTemplateFromConfig) {
  std::unique_ptr<Tokenizer> tokenizer = LoadFixture("bytelevel_tokenizer");
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_EQ(tokenizer->bos_token_id(), tokenizer->TokenToId("<|begin_of_text|>"));
  EXPECT_EQ(tokenizer->eos_token_id(), tokenizer->TokenToId("<|eot_id|>"));
  ASSERT_TRUE(tokenizer->bos_token_id().has_value());
  EXPECT_TRUE(tokenizer->IsSpecial(*tokenizer->bos_token_id()));
  EXPECT_EQ(tokenizer->IdToToken(*tokenizer->eos_token_id()), "<|eot_id|>");
  EXPECT_THAT(tokenizer->chat_template(), HasSubstr("<|eot_id|>"));
  EXPECT_GT(tokenizer->vocab_size(), 256);
  EXPECT_TRUE(tokenizer->IdToToken(static_cast<int32_t>(tokenizer->vocab_size() - 1)).has_value());
  // The post-processor adds BOS when the config does not say add_bos_token.
  EXPECT_EQ(tokenizer->Encode("Hi").front(), *tokenizer->bos_token_id());
}

TEST(Tokenizer, ConfigAddBosTokenFalseOverridesNothingAndChatTemplateListTakesDefault) {
  std::unique_ptr<Tokenizer> tokenizer = LoadFixture("gpt2_tokenizer");
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_EQ(tokenizer->chat_template(), "{{ messages }}");
  EXPECT_EQ(tokenizer->bos_token_id(), tokenizer->TokenToId("<|endoftext|>"));
  EXPECT_EQ(tokenizer->Encode("Hi", true), tokenizer->Encode("Hi", false));
  // The non-special added token is kept when skipping special tokens.
  const std::optional<int32_t> tag = tokenizer->TokenToId("[TAG]");
  ASSERT_TRUE(tag.has_value());
  EXPECT_FALSE(tokenizer->IsSpecial(*tag));
  EXPECT_EQ(tokenizer->Decode({*tag}, /*skip_special_tokens=*/true), "[TAG]");
}

TEST(Tokenizer, ConfigAddBosTokenAddsBosWithoutPostProcessor) {
  std::unique_ptr<Tokenizer> tokenizer = LoadFixture("llama2_tokenizer");
  ASSERT_NE(tokenizer, nullptr);
  ASSERT_EQ(tokenizer->bos_token_id(), tokenizer->TokenToId("<s>"));
  const std::vector<int32_t> ids = tokenizer->Encode("Hello world");
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.front(), *tokenizer->bos_token_id());
  EXPECT_EQ(tokenizer->Encode("", true), std::vector<int32_t>{*tokenizer->bos_token_id()});
  EXPECT_THAT(tokenizer->Encode("", false), IsEmpty());
}

TEST(Tokenizer, DecodeOfEncodeIsIdentityForSentencePieceStyle) {
  std::unique_ptr<Tokenizer> tokenizer = LoadFixture("llama2_tokenizer");
  ASSERT_NE(tokenizer, nullptr);
  for (const std::string text : {"Hello world", " leading space", "two  spaces\nand a line",
                                 "中文 😀 👨‍👩‍👧‍👦", "tab\tend "}) {
    EXPECT_EQ(tokenizer->Decode(tokenizer->Encode(text), /*skip_special_tokens=*/true), text);
  }
}

TEST(Tokenizer, DecodeOfEncodeIsIdentityForByteLevel) {
  std::unique_ptr<Tokenizer> tokenizer = LoadFixture("bytelevel_tokenizer");
  ASSERT_NE(tokenizer, nullptr);
  for (const std::string text :
       {"Hello world", "  two\n\n\tlines ", "中文 😀 👨‍👩‍👧‍👦", "x"}) {
    EXPECT_EQ(tokenizer->Decode(tokenizer->Encode(text), /*skip_special_tokens=*/true), text);
  }
}

TEST(Tokenizer, ReplacesInvalidUtf8BeforeEncoding) {
  std::unique_ptr<Tokenizer> tokenizer = LoadFixture("bytelevel_tokenizer");
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_EQ(tokenizer->Encode("a\xFF b\xE4\xB8", false),
            tokenizer->Encode("a\xEF\xBF\xBD b\xEF\xBF\xBD", false));
}

TEST(Tokenizer, DecodeSkipsUnknownIdsAndCanEndInsideACharacter) {
  std::unique_ptr<Tokenizer> tokenizer = LoadFixture("bytelevel_tokenizer");
  ASSERT_NE(tokenizer, nullptr);
  const std::vector<int32_t> ids = tokenizer->Encode("😀", false);
  ASSERT_GT(ids.size(), 1u);
  EXPECT_EQ(tokenizer->Decode({-5, ids[0], 1 << 20}, false).substr(0, 1), "\xF0");
  EXPECT_EQ(tokenizer->IdToToken(1 << 20), std::nullopt);
}

TEST(Tokenizer, EncodesConcurrently) {
  std::unique_ptr<Tokenizer> tokenizer = LoadFixture("bytelevel_tokenizer");
  ASSERT_NE(tokenizer, nullptr);
  const std::string text = "Once upon a time, there was a little girl named Lily. 中文 😀";
  const std::vector<int32_t> expected = tokenizer->Encode(text);
  std::vector<std::vector<int32_t>> results(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) results[t] = tokenizer->Encode(text);
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const auto& result : results) EXPECT_EQ(result, expected);
}

// A minimal valid tokenizer.json, to be broken by the error tests.
nlohmann::json MinimalTokenizer() {
  return nlohmann::json::parse(R"({
    "added_tokens": [],
    "normalizer": null, "pre_tokenizer": null, "post_processor": null, "decoder": null,
    "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}
  })");
}

TEST(Tokenizer, MinimalBpeMergesAndJoinsTokensWithoutDecoder) {
  auto tokenizer = Tokenizer::FromJson(MinimalTokenizer().dump(), "", "mem");
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_THAT((*tokenizer)->Encode("abab"), ElementsAre(2, 2));
  EXPECT_EQ((*tokenizer)->Decode({2, 0}, false), "ab a");
  EXPECT_EQ((*tokenizer)->bos_token_id(), std::nullopt);
  EXPECT_EQ((*tokenizer)->chat_template(), "");
}

void ExpectError(const nlohmann::json& tokenizer_json, absl::StatusCode code,
                 const std::string& message_part) {
  auto tokenizer = Tokenizer::FromJson(tokenizer_json.dump(), "", "/models/x/tokenizer.json");
  ASSERT_FALSE(tokenizer.ok());
  EXPECT_EQ(tokenizer.status().code(), code) << tokenizer.status();
  EXPECT_THAT(std::string(tokenizer.status().message()), HasSubstr("/models/x/tokenizer.json"));
  EXPECT_THAT(std::string(tokenizer.status().message()), HasSubstr(message_part));
}

TEST(TokenizerErrors, RejectsInvalidJson) {
  auto tokenizer = Tokenizer::FromJson("{\"model\": ", "", "/models/x/tokenizer.json");
  ASSERT_FALSE(tokenizer.ok());
  EXPECT_EQ(tokenizer.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(tokenizer.status().message()), HasSubstr("/models/x/tokenizer.json"));
  EXPECT_THAT(std::string(tokenizer.status().message()), HasSubstr("not valid JSON"));
}

TEST(TokenizerErrors, RejectsInvalidConfigJson) {
  auto tokenizer = Tokenizer::FromJson(MinimalTokenizer().dump(), "[1,", "src");
  ASSERT_FALSE(tokenizer.ok());
  EXPECT_THAT(std::string(tokenizer.status().message()), HasSubstr("tokenizer_config.json"));
}

TEST(TokenizerErrors, RejectsMissingModel) {
  nlohmann::json json = MinimalTokenizer();
  json.erase("model");
  ExpectError(json, absl::StatusCode::kInvalidArgument, "model");
}

TEST(TokenizerErrors, RejectsWordPieceAsUnimplemented) {
  nlohmann::json json = MinimalTokenizer();
  json["model"]["type"] = "WordPiece";
  ExpectError(json, absl::StatusCode::kUnimplemented, "WordPiece");
}

TEST(TokenizerErrors, RejectsMergeOfUnknownToken) {
  nlohmann::json json = MinimalTokenizer();
  json["model"]["merges"] = {"a c"};
  ExpectError(json, absl::StatusCode::kInvalidArgument, "'c'");
}

TEST(TokenizerErrors, RejectsMergeWhoseResultIsNotInVocab) {
  nlohmann::json json = MinimalTokenizer();
  json["model"]["merges"] = nlohmann::json::array({nlohmann::json::array({"b", "a"})});
  ExpectError(json, absl::StatusCode::kInvalidArgument, "'ba'");
}

TEST(TokenizerErrors, RejectsWrongFieldTypes) {
  nlohmann::json json = MinimalTokenizer();
  json["model"]["vocab"] = {"a", "b"};
  ExpectError(json, absl::StatusCode::kInvalidArgument, "vocab");
  json = MinimalTokenizer();
  json["model"]["vocab"]["c"] = "three";
  ExpectError(json, absl::StatusCode::kInvalidArgument, "'c'");
  json = MinimalTokenizer();
  json["model"]["byte_fallback"] = "yes";
  ExpectError(json, absl::StatusCode::kInvalidArgument, "byte_fallback");
  json = MinimalTokenizer();
  json["added_tokens"] = {{{"id", "0"}, {"content", "<s>"}}};
  ExpectError(json, absl::StatusCode::kInvalidArgument, "added_tokens[0]");
  json = MinimalTokenizer();
  json["post_processor"] = {{"type", "TemplateProcessing"},
                            {"single", {{{"SpecialToken", {{"id", "<s>"}}}}}},
                            {"special_tokens", nlohmann::json::object()}};
  ExpectError(json, absl::StatusCode::kInvalidArgument, "<s>");
}

TEST(TokenizerErrors, RejectsBadRegexAndUnknownComponents) {
  nlohmann::json json = MinimalTokenizer();
  json["pre_tokenizer"] = {{"type", "Split"},
                           {"pattern", {{"Regex", "(unclosed"}}},
                           {"behavior", "Isolated"},
                           {"invert", false}};
  ExpectError(json, absl::StatusCode::kInvalidArgument, "(unclosed");
  json = MinimalTokenizer();
  json["normalizer"] = {{"type", "Precompiled"}};
  ExpectError(json, absl::StatusCode::kUnimplemented, "Precompiled");
  json = MinimalTokenizer();
  json["decoder"] = {{"type", "WordPiece"}};
  ExpectError(json, absl::StatusCode::kUnimplemented, "WordPiece");
  json = MinimalTokenizer();
  json["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "a"}}}, {"behavior", "Odd"}};
  ExpectError(json, absl::StatusCode::kInvalidArgument, "Odd");
}

TEST(TokenizerErrors, MissingDirectoryIsNotFound) {
  auto tokenizer = Tokenizer::FromDirectory("/nonexistent/pagoda/model");
  ASSERT_FALSE(tokenizer.ok());
  EXPECT_EQ(tokenizer.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(tokenizer.status().message()),
              HasSubstr("/nonexistent/pagoda/model/tokenizer.json"));
}

}  // namespace
}  // namespace pagoda
