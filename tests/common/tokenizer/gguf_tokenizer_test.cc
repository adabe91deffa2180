// Checks the GGUF tokenizer against the Hugging Face reading of the same files (transformers +
// tokenizers, recorded at test time by tests/data/make_gguf_tokenizer_fixture.py): SmolLM2's
// byte-level BPE (and llama.cpp's prompt ids of its goldens), tiny SentencePiece-style vocabularies
// written with gguf.GGUFWriter (Llama's, and Gemma's without a space prefix), their chat templates
// against Python's jinja2; then the pre-tokenizer names, the token types, the stop ids, and every
// kind of malformed input.
#include "common/tokenizer/gguf_tokenizer.h"

#include <cmath>
#include <functional>
#include <limits>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/chat_template/chat_template.h"
#include "common/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace pagoda {
namespace {

using ::nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// GgufTokenizerData holds views; this owns what they point at.
struct OwnedData {
  std::vector<std::string> tokens;
  std::vector<std::string> merges;
  GgufTokenizerData data;

  // Points the views at the owned strings (call after changing tokens or merges).
  void Bind() {
    data.tokens.assign(tokens.begin(), tokens.end());
    data.merges.assign(merges.begin(), merges.end());
  }
};

OwnedData FromFixture(const json& inputs) {
  OwnedData owned;
  owned.tokens = inputs.at("tokens").get<std::vector<std::string>>();
  owned.merges = inputs.at("merges").get<std::vector<std::string>>();
  GgufTokenizerData& d = owned.data;
  d.model = inputs.at("model").get<std::string>();
  d.pre = inputs.at("pre").get<std::string>();
  d.scores = inputs.at("scores").get<std::vector<float>>();
  d.token_types = inputs.at("token_types").get<std::vector<int32_t>>();
  d.chat_template = inputs.at("chat_template").get<std::string>();
  const std::pair<const char*, std::optional<int32_t>*> ids[] = {{"bos", &d.bos}, {"eos", &d.eos},
                                                                 {"eot", &d.eot}, {"eom", &d.eom},
                                                                 {"unk", &d.unk}, {"pad", &d.pad}};
  for (const auto& [key, id] : ids) {
    if (inputs.contains(key)) *id = inputs.at(key).get<int32_t>();
  }
  const std::pair<const char*, std::optional<bool>*> flags[] = {
      {"add_bos", &d.add_bos}, {"add_eos", &d.add_eos}, {"add_space_prefix", &d.add_space_prefix}};
  for (const auto& [key, flag] : flags) {
    if (inputs.contains(key)) *flag = inputs.at(key).get<bool>();
  }
  owned.Bind();
  return owned;
}

// The fixture the CTest setup test wrote (read once: SmolLM2's part is a few MB).
const json& Fixture() {
  static const json* const fixture = [] {
    const std::string path =
        std::string(PAGODA_GGUF_TOKENIZER_FIXTURE_DIR) + "/gguf_tokenizer_fixture.json";
    auto text = ReadFileToString(path);
    if (!text.ok()) {
      ADD_FAILURE() << text.status()
                    << " (run through ctest: its gguf_tokenizer_fixture test writes it)";
      return new json(json::object());
    }
    return new json(json::parse(*text));
  }();
  return *fixture;
}

std::unique_ptr<Tokenizer> Build(const GgufTokenizerData& data) {
  auto tokenizer = TokenizerFromGgufData(data, "test.gguf");
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return tokenizer.ok() ? std::move(tokenizer).value() : nullptr;
}

// Encodes and decodes every recorded text as transformers did.
void ExpectMatchesTransformers(const json& model) {
  OwnedData owned = FromFixture(model.at("inputs"));
  std::unique_ptr<Tokenizer> tokenizer = Build(owned.data);
  ASSERT_NE(tokenizer, nullptr);
  const bool compare_special = model.at("hf_special_tokens_match_file").get<bool>();
  const GgufTokenizerData& d = owned.data;
  for (const json& c : model.at("cases")) {
    const std::string text = c.at("text").get<std::string>();
    SCOPED_TRACE("text: \"" + text + "\"");
    const auto ids = c.at("ids").get<std::vector<int32_t>>();
    const auto hf_with_special = c.at("ids_with_special").get<std::vector<int32_t>>();
    EXPECT_EQ(tokenizer->Encode(text, /*add_special_tokens=*/false), ids);
    if (compare_special) {
      EXPECT_EQ(tokenizer->Encode(text, /*add_special_tokens=*/true), hf_with_special);
    } else {
      // transformers ignores the file's add_bos/add_eos here; the file decides.
      std::vector<int32_t> expected;
      if (d.add_bos.value_or(d.model == "llama")) expected.push_back(*d.bos);
      expected.insert(expected.end(), ids.begin(), ids.end());
      if (d.add_eos.value_or(false)) expected.push_back(*d.eos);
      EXPECT_EQ(tokenizer->Encode(text, /*add_special_tokens=*/true), expected);
    }
    EXPECT_EQ(tokenizer->Decode(ids, /*skip_special_tokens=*/false),
              c.at("decoded").get<std::string>());
    EXPECT_EQ(tokenizer->Decode(hf_with_special, /*skip_special_tokens=*/true),
              c.at("decoded_skip_special").get<std::string>());
  }
}

// Renders each recorded conversation with the file's template, as transformers' jinja2 did.
void ExpectChatTemplateMatchesJinja2(const json& model) {
  OwnedData owned = FromFixture(model.at("inputs"));
  std::unique_ptr<Tokenizer> tokenizer = Build(owned.data);
  ASSERT_NE(tokenizer, nullptr);
  ASSERT_FALSE(tokenizer->chat_template().empty());
  EXPECT_EQ(tokenizer->chat_template(), owned.data.chat_template);
  auto tmpl = ChatTemplate::Parse(tokenizer->chat_template());
  ASSERT_TRUE(tmpl.ok()) << tmpl.status();
  ASSERT_GE(model.at("chats").size(), 3u);
  for (const json& chat : model.at("chats")) {
    SCOPED_TRACE(chat.at("messages").dump());
    const json extra = {{"bos_token", chat.at("bos_token")}, {"eos_token", chat.at("eos_token")}};
    auto rendered =
        tmpl->Render(chat.at("messages"), chat.at("add_generation_prompt").get<bool>(), extra);
    ASSERT_TRUE(rendered.ok()) << rendered.status();
    EXPECT_EQ(*rendered, chat.at("rendered").get<std::string>());
  }
}

class SmolLM2Test : public ::testing::Test {
 protected:
  void SetUp() override {
    if (Fixture().contains("smollm2_absent")) {
      GTEST_SKIP() << Fixture().at("smollm2_absent").get<std::string>();
    }
    ASSERT_TRUE(Fixture().contains("smollm2"));
  }
  const json& model() const { return Fixture().at("smollm2"); }
};

TEST_F(SmolLM2Test, PromptIdsEqualTheGoldens) {
  OwnedData owned = FromFixture(model().at("inputs"));
  std::unique_ptr<Tokenizer> tokenizer = Build(owned.data);
  ASSERT_NE(tokenizer, nullptr);
  auto text =
      ReadFileToString(std::string(PAGODA_SHARED_DIR) + "/models/smollm2/golden_greedy.jsonl");
  ASSERT_TRUE(text.ok()) << text.status();
  std::istringstream lines(*text);
  int checked = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.empty()) continue;
    const json golden = json::parse(line);
    const std::string prompt = golden.at("prompt").get<std::string>();
    SCOPED_TRACE(prompt);
    const auto expected = golden.at("prompt_ids").get<std::vector<int32_t>>();
    EXPECT_EQ(tokenizer->Encode(prompt, /*add_special_tokens=*/true), expected);
    EXPECT_EQ(tokenizer->Decode(expected, /*skip_special_tokens=*/false), prompt);
    ++checked;
  }
  EXPECT_EQ(checked, 4);
}

TEST_F(SmolLM2Test, EncodesAndDecodesLikeTransformers) {
  ASSERT_GE(model().at("cases").size(), 300u);
  EXPECT_EQ(model().at("inputs").at("pre"), "smollm");
  ExpectMatchesTransformers(model());
}

TEST_F(SmolLM2Test, ChatTemplateRendersLikeJinja2) { ExpectChatTemplateMatchesJinja2(model()); }

TEST_F(SmolLM2Test, SpecialTokensAndStopIds) {
  OwnedData owned = FromFixture(model().at("inputs"));
  std::unique_ptr<Tokenizer> tokenizer = Build(owned.data);
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_EQ(tokenizer->vocab_size(), 49152);
  EXPECT_EQ(tokenizer->bos_token_id(), 1);
  EXPECT_EQ(tokenizer->eos_token_id(), 2);
  EXPECT_EQ(tokenizer->TokenToId("<|im_start|>"), 1);
  EXPECT_TRUE(tokenizer->IsSpecial(2));
  EXPECT_FALSE(tokenizer->IsSpecial(tokenizer->Encode("hello", false).at(0)));
  // add_bos_token is false in the file: nothing is added.
  EXPECT_THAT(tokenizer->Encode("hello", true), ElementsAre(28120));
  // <|im_end|> (EOS) first, then <|endoftext|>, which llama.cpp also stops at.
  EXPECT_THAT(tokenizer->stop_token_ids(), ElementsAre(2, 0));
  EXPECT_THAT(EosTokenIds({2}, *tokenizer), ElementsAre(2, 0));
  EXPECT_EQ(tokenizer->Decode(tokenizer->Encode("<|im_start|>user\nHi<|im_end|>", false), true),
            "user\nHi");
}

class TinyLlamaTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(Fixture().contains("tiny_llama")); }
  const json& model() const { return Fixture().at("tiny_llama"); }
};

TEST_F(TinyLlamaTest, EncodesAndDecodesLikeTransformers) {
  ASSERT_GE(model().at("cases").size(), 200u);
  ASSERT_TRUE(model().at("hf_special_tokens_match_file").get<bool>());
  ExpectMatchesTransformers(model());
}

TEST_F(TinyLlamaTest, ChatTemplateRendersLikeJinja2) { ExpectChatTemplateMatchesJinja2(model()); }

TEST_F(TinyLlamaTest, TokenTypesDecideWhatIsSpecial) {
  OwnedData owned = FromFixture(model().at("inputs"));
  std::unique_ptr<Tokenizer> tokenizer = Build(owned.data);
  ASSERT_NE(tokenizer, nullptr);
  const std::optional<int32_t> tag = tokenizer->TokenToId("<tag>");      // user-defined
  const std::optional<int32_t> user = tokenizer->TokenToId("<|user|>");  // control
  const std::optional<int32_t> unused = tokenizer->TokenToId("<unused0>");
  ASSERT_TRUE(tag.has_value() && user.has_value() && unused.has_value());
  EXPECT_FALSE(tokenizer->IsSpecial(*tag));
  EXPECT_TRUE(tokenizer->IsSpecial(*user));
  EXPECT_TRUE(tokenizer->IsSpecial(0));  // <unk> (type unknown)
  EXPECT_FALSE(tokenizer->IsSpecial(*unused));

  // User-defined and control tokens are cut out of the text before the BPE, as llama.cpp does.
  const std::vector<int32_t> ids = tokenizer->Encode("a<tag>b<|user|>c<unk>", false);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), *tag), 1);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), *user), 1);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 0), 1);
  EXPECT_EQ(tokenizer->Decode(ids, /*skip_special_tokens=*/false), "a<tag> b<|user|> c<unk>");
  EXPECT_EQ(tokenizer->Decode(ids, /*skip_special_tokens=*/true), "a<tag> b c");
  // An unused token is plain vocabulary: its text is spelled out.
  const std::vector<int32_t> spelled = tokenizer->Encode("<unused0>", false);
  EXPECT_EQ(std::count(spelled.begin(), spelled.end(), *unused), 0);
}

TEST_F(TinyLlamaTest, AddsBosAndStopsAtEosAndEot) {
  OwnedData owned = FromFixture(model().at("inputs"));
  std::unique_ptr<Tokenizer> tokenizer = Build(owned.data);
  ASSERT_NE(tokenizer, nullptr);
  const std::optional<int32_t> end = tokenizer->TokenToId("<|end|>");
  ASSERT_TRUE(end.has_value());
  ASSERT_EQ(owned.data.eot, end);
  EXPECT_EQ(tokenizer->bos_token_id(), 1);
  EXPECT_EQ(tokenizer->eos_token_id(), 2);
  EXPECT_EQ(tokenizer->Encode("hi", true).front(), 1);
  EXPECT_THAT(tokenizer->stop_token_ids(), ElementsAre(2, *end));
  EXPECT_THAT(EosTokenIds({}, *tokenizer), ElementsAre(2, *end));
  EXPECT_THAT(EosTokenIds({*end, 7}, *tokenizer), ElementsAre(*end, 7, 2));

  owned.data.add_bos = false;
  owned.data.add_eos = true;
  tokenizer = Build(owned.data);
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_NE(tokenizer->Encode("hi", true).front(), 1);
  EXPECT_EQ(tokenizer->Encode("hi", true).back(), 2);
}

// A byte-level vocabulary: the 256 byte symbols, then the given merges (and their results).
OwnedData ByteLevelVocab(std::string pre, const std::vector<std::string>& merges) {
  OwnedData owned;
  owned.data.model = "gpt2";
  owned.data.pre = std::move(pre);
  // GPT-2's byte -> printable character table, in id order of the bytes.
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    int code = b;
    if (!printable) {
      int n = 0;
      for (int c = 0; c < b; ++c) {
        if (!((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || c >= 0xAE)) ++n;
      }
      code = 256 + n;
    }
    std::string utf8;
    if (code < 0x80) {
      utf8.push_back(static_cast<char>(code));
    } else {
      utf8.push_back(static_cast<char>(0xC0 | (code >> 6)));
      utf8.push_back(static_cast<char>(0x80 | (code & 0x3F)));
    }
    owned.tokens.push_back(utf8);
  }
  for (const std::string& merge : merges) {
    owned.merges.push_back(merge);
    const size_t space = merge.find(' ');
    owned.tokens.push_back(merge.substr(0, space) + merge.substr(space + 1));
  }
  owned.tokens.push_back("<|eot_id|>");
  owned.data.token_types.assign(owned.tokens.size(), 1);
  owned.data.token_types.back() = 3;
  owned.Bind();
  return owned;
}

std::vector<std::string> Pieces(const Tokenizer& tokenizer, std::string_view text) {
  std::vector<std::string> pieces;
  for (int32_t id : tokenizer.Encode(text, false)) pieces.push_back(*tokenizer.IdToToken(id));
  return pieces;
}

// A Gemma-style SentencePiece vocabulary as llama.cpp's converter writes Gemma 2/3 (no space
// prefix, BOS added, <end_of_turn>, Gemma 3's chat template).
class TinyGemmaTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(Fixture().contains("tiny_gemma")); }
  const json& model() const { return Fixture().at("tiny_gemma"); }
};

TEST_F(TinyGemmaTest, EncodesAndDecodesLikeTransformers) {
  ASSERT_GE(model().at("cases").size(), 200u);
  ASSERT_TRUE(model().at("hf_special_tokens_match_file").get<bool>());
  ExpectMatchesTransformers(model());
}

TEST_F(TinyGemmaTest, ChatTemplateRendersLikeJinja2) { ExpectChatTemplateMatchesJinja2(model()); }

TEST_F(TinyGemmaTest, AddsBosWithoutASpacePrefixAndStopsAtEndOfTurn) {
  OwnedData owned = FromFixture(model().at("inputs"));
  ASSERT_EQ(owned.data.add_space_prefix, false);
  std::unique_ptr<Tokenizer> tokenizer = Build(owned.data);
  ASSERT_NE(tokenizer, nullptr);
  const std::vector<int32_t> ids = tokenizer->Encode("Hello world", true);
  ASSERT_GE(ids.size(), 2u);
  EXPECT_EQ(ids[0], 2);  // <bos>
  // No "\u2581" glued in front of the first word; the second word's space becomes one.
  EXPECT_EQ(tokenizer->IdToToken(ids[1]).value_or("").substr(0, 1), "H");
  EXPECT_EQ(tokenizer->Decode(ids, /*skip_special_tokens=*/true), "Hello world");
  const std::optional<int32_t> end_of_turn = tokenizer->TokenToId("<end_of_turn>");
  ASSERT_TRUE(end_of_turn.has_value());
  // The file names no EOT id: <end_of_turn> stops generation by its text, as in llama.cpp.
  ASSERT_FALSE(owned.data.eot.has_value());
  EXPECT_THAT(tokenizer->stop_token_ids(), ElementsAre(1, *end_of_turn));
  EXPECT_THAT(EosTokenIds({1}, *tokenizer), ElementsAre(1, *end_of_turn));
  EXPECT_THAT(tokenizer->Encode("<start_of_turn>model\n", false).front(),
              *tokenizer->TokenToId("<start_of_turn>"));
}

TEST(GgufPreTokenizer, EachNameSplitsAsLlamaCppDoes) {
  const std::vector<std::string> merges = {"Ġ 1", "1 2", "12 3", "123 4", ", b"};
  auto pieces = [&](const std::string& pre, std::string_view text) {
    OwnedData owned = ByteLevelVocab(pre, merges);
    owned.data.add_bos = false;  // Llama-3 adds BOS by default; this vocabulary has none
    std::unique_ptr<Tokenizer> tokenizer = Build(owned.data);
    return tokenizer == nullptr ? std::vector<std::string>() : Pieces(*tokenizer, text);
  };
  // GPT-2: " 1234" is one word; "," one of its own.
  EXPECT_THAT(pieces("gpt-2", "x 1234"), ElementsAre("x", "Ġ1", "2", "3", "4"));
  EXPECT_THAT(pieces("gpt-2", "a,b"), ElementsAre("a", ",", "b"));
  // llama.cpp's default (also when the key is absent): punctuation runs, digit runs, threes.
  EXPECT_THAT(pieces("default", "x 1234"), ElementsAre("x", "Ġ", "123", "4"));
  EXPECT_THAT(pieces("", "x 1234"), ElementsAre("x", "Ġ", "123", "4"));
  EXPECT_THAT(pieces("default", "a,b"), ElementsAre("a", ",", "b"));
  // SmolLM / StarCoder: each digit alone, then GPT-2's regex.
  EXPECT_THAT(pieces("smollm", "x 1234"), ElementsAre("x", "Ġ", "1", "2", "3", "4"));
  EXPECT_THAT(pieces("starcoder", "x 1234"), ElementsAre("x", "Ġ", "1", "2", "3", "4"));
  EXPECT_THAT(pieces("smollm", "a,b"), ElementsAre("a", ",", "b"));
  // Llama-3: up to three digits, a letter run takes one leading non-letter; Qwen2: one digit.
  EXPECT_THAT(pieces("llama-bpe", "x 1234"), ElementsAre("x", "Ġ", "123", "4"));
  EXPECT_THAT(pieces("llama3", "a,b"), ElementsAre("a", ",b"));
  EXPECT_THAT(pieces("qwen2", "x 1234"), ElementsAre("x", "Ġ", "1", "2", "3", "4"));
  EXPECT_THAT(pieces("qwen2", "a,b"), ElementsAre("a", ",b"));
}

TEST(GgufPreTokenizer, Llama3AddsBosAndIgnoresMerges) {
  // "ab" is a token, but no merge makes it: ignore_merges (Llama-3) still finds it whole.
  OwnedData owned = ByteLevelVocab("llama-bpe", {"b c"});
  owned.tokens.push_back("ab");
  owned.data.token_types.push_back(1);
  owned.data.bos = static_cast<int32_t>(owned.tokens.size() - 2);  // <|eot_id|>, for the test
  owned.Bind();
  std::unique_ptr<Tokenizer> tokenizer = Build(owned.data);
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_THAT(Pieces(*tokenizer, "ab"), ElementsAre("ab"));
  EXPECT_EQ(tokenizer->Encode("ab", true).front(), *owned.data.bos);

  owned.data.pre = "gpt-2";
  tokenizer = Build(owned.data);
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_THAT(Pieces(*tokenizer, "ab"), ElementsAre("a", "b"));
  EXPECT_EQ(tokenizer->Encode("ab", true).size(), 2u);  // gpt2 adds no BOS by default
}

TEST(GgufPreTokenizer, Qwen2NormalizesToNfc) {
  OwnedData owned = ByteLevelVocab("qwen2", {"1 2"});
  std::unique_ptr<Tokenizer> tokenizer = Build(owned.data);
  ASSERT_NE(tokenizer, nullptr);
  // e + combining acute -> é (C3 A9): two byte symbols instead of three.
  EXPECT_EQ(tokenizer->Encode("e\xCC\x81", false).size(), 2u);
  EXPECT_EQ(tokenizer->Decode(tokenizer->Encode("e\xCC\x81", false), false), "\xC3\xA9");
}

TEST(GgufTokenizer, StopsAtEndOfTurnTokensByText) {
  OwnedData owned = ByteLevelVocab("gpt-2", {"1 2"});
  owned.data.eos = 0;
  std::unique_ptr<Tokenizer> tokenizer = Build(owned.data);
  ASSERT_NE(tokenizer, nullptr);
  const int32_t eot = static_cast<int32_t>(owned.tokens.size() - 1);
  EXPECT_THAT(tokenizer->stop_token_ids(), ElementsAre(0, eot));
  EXPECT_THAT(EosTokenIds({}, *tokenizer), ElementsAre(0, eot));
}

TEST(GgufTokenizer, WithoutTokenTypesBosEosAndUnkAreSpecial) {
  OwnedData owned = ByteLevelVocab("gpt-2", {"1 2"});
  owned.data.token_types.clear();
  owned.data.bos = owned.data.eos = static_cast<int32_t>(owned.tokens.size() - 1);
  std::unique_ptr<Tokenizer> tokenizer = Build(owned.data);
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_TRUE(tokenizer->IsSpecial(*owned.data.eos));
  EXPECT_THAT(tokenizer->Encode("a<|eot_id|>", false), ElementsAre(97, *owned.data.eos));
}

TEST(GgufTokenizer, NamesEmptyTokensAsLlamaCppDoes) {
  OwnedData owned = ByteLevelVocab("gpt-2", {"1 2"});
  owned.tokens.push_back("");
  owned.data.token_types.push_back(5);
  owned.Bind();
  std::unique_ptr<Tokenizer> tokenizer = Build(owned.data);
  ASSERT_NE(tokenizer, nullptr);
  const int32_t id = static_cast<int32_t>(owned.tokens.size() - 1);
  EXPECT_EQ(tokenizer->IdToToken(id), absl::StrCat("[EMPTY_", id, "]"));
}

TEST(GgufTokenizer, ConvertsToFilesTokenizerFromJsonLoads) {
  OwnedData owned = ByteLevelVocab("smollm", {"1 2"});
  auto files = ConvertGgufTokenizer(owned.data, "x.gguf");
  ASSERT_TRUE(files.ok()) << files.status();
  auto tokenizer = Tokenizer::FromJson(files->tokenizer_json, files->tokenizer_config_json, "x");
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_EQ((*tokenizer)->vocab_size(), static_cast<int64_t>(owned.tokens.size()));
  EXPECT_THAT(SupportedGgufPreTokenizers(), HasSubstr("llama-bpe"));
}

// One malformed input: a change to a valid vocabulary and the error it must give.
struct Malformed {
  std::string name;
  std::function<void(OwnedData&)> corrupt;
  absl::StatusCode code;
  std::string message;
};

void PrintTo(const Malformed& malformed, std::ostream* os) { *os << malformed.name; }

std::vector<Malformed> MalformedCases() {
  using absl::StatusCode;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  return {
      {"UnknownModel", [](OwnedData& o) { o.data.model = "bert"; }, StatusCode::kUnimplemented,
       "tokenizer.ggml.model 'bert' is not supported (supported: gpt2, llama)"},
      {"UnknownPre", [](OwnedData& o) { o.data.pre = "deepseek-llm"; }, StatusCode::kUnimplemented,
       "tokenizer.ggml.pre 'deepseek-llm' is not supported"},
      {"NoTokens",
       [](OwnedData& o) {
         o.tokens.clear();
         o.data.token_types.clear();
       },
       StatusCode::kInvalidArgument, "tokenizer.ggml.tokens is empty"},
      {"ScoresLength", [](OwnedData& o) { o.data.scores = {1.0f}; }, StatusCode::kInvalidArgument,
       "tokenizer.ggml.scores has 1 entries for 259 tokens"},
      {"TypesLength", [](OwnedData& o) { o.data.token_types.pop_back(); },
       StatusCode::kInvalidArgument, "tokenizer.ggml.token_type has 258 entries for 259 tokens"},
      {"UnknownType", [](OwnedData& o) { o.data.token_types[3] = 9; }, StatusCode::kInvalidArgument,
       "tokenizer.ggml.token_type[3] is 9"},
      {"ZeroType", [](OwnedData& o) { o.data.token_types[0] = 0; }, StatusCode::kInvalidArgument,
       "tokenizer.ggml.token_type[0] is 0"},
      {"DuplicateToken", [](OwnedData& o) { o.tokens[7] = o.tokens[5]; },
       StatusCode::kInvalidArgument, "tokenizer.ggml.tokens[7] repeats token 5"},
      {"InvalidUtf8Token", [](OwnedData& o) { o.tokens[9] = "\xC3("; },
       StatusCode::kInvalidArgument, "tokenizer.ggml.tokens[9] is not valid UTF-8"},
      {"NanScore",
       [nan](OwnedData& o) {
         o.data.scores.assign(o.tokens.size(), 0.0f);
         o.data.scores[4] = nan;
       },
       StatusCode::kInvalidArgument, "tokenizer.ggml.scores[4] is nan"},
      {"BosOutOfRange", [](OwnedData& o) { o.data.bos = 259; }, StatusCode::kInvalidArgument,
       "tokenizer.ggml.bos_token_id = 259 is not a token id (259 tokens)"},
      {"NegativeEos", [](OwnedData& o) { o.data.eos = -1; }, StatusCode::kInvalidArgument,
       "tokenizer.ggml.eos_token_id = -1 is not a token id"},
      {"EotOutOfRange", [](OwnedData& o) { o.data.eot = 1 << 30; }, StatusCode::kInvalidArgument,
       "tokenizer.ggml.eot_token_id = 1073741824"},
      {"UnkOutOfRange", [](OwnedData& o) { o.data.unk = 300; }, StatusCode::kInvalidArgument,
       "tokenizer.ggml.unknown_token_id = 300"},
      {"PadOutOfRange", [](OwnedData& o) { o.data.pad = 300; }, StatusCode::kInvalidArgument,
       "tokenizer.ggml.padding_token_id = 300"},
      {"NoMerges", [](OwnedData& o) { o.merges.clear(); }, StatusCode::kInvalidArgument,
       "tokenizer.ggml.merges is missing or empty"},
      {"MergeWithoutSpace", [](OwnedData& o) { o.merges[1] = "12"; }, StatusCode::kInvalidArgument,
       "tokenizer.ggml.merges[1] must be two tokens separated by one space, got '12'"},
      {"MergeWithTwoSpaces", [](OwnedData& o) { o.merges[0] = "1 2 3"; },
       StatusCode::kInvalidArgument, "tokenizer.ggml.merges[0] must be two tokens"},
      {"MergeUnknownToken", [](OwnedData& o) { o.merges[1] = "12 zz"; },
       StatusCode::kInvalidArgument, "tokenizer.ggml.merges[1] names 'zz', which is not a token"},
      {"MergeResultUnknown", [](OwnedData& o) { o.merges[1] = "1 3"; },
       StatusCode::kInvalidArgument, "tokenizer.ggml.merges[1] makes '13', which is not a token"},
      {"AddBosWithoutBos", [](OwnedData& o) { o.data.add_bos = true; },
       StatusCode::kInvalidArgument, "there is no tokenizer.ggml.bos_token_id"},
      {"AddEosWithoutEos", [](OwnedData& o) { o.data.add_eos = true; },
       StatusCode::kInvalidArgument,
       "tokenizer.ggml.add_eos_token is true but there is no tokenizer.ggml.eos_token_id"},
      {"Llama3WithoutBos", [](OwnedData& o) { o.data.pre = "llama3"; },
       StatusCode::kInvalidArgument, "there is no tokenizer.ggml.bos_token_id"},
      {"LlamaWithoutScores",
       [](OwnedData& o) {
         o.data.model = "llama";
         o.merges.clear();
         o.data.bos = 0;
       },
       StatusCode::kInvalidArgument, "a llama tokenizer needs tokenizer.ggml.scores"},
      {"LlamaBadByteToken",
       [](OwnedData& o) {
         o.data.model = "llama";
         o.data.bos = 0;
         o.data.token_types[40] = 6;
       },
       StatusCode::kInvalidArgument, "has type byte but is not <0xNN>"},
      {"ChatTemplateNotUtf8", [](OwnedData& o) { o.data.chat_template = "{{ \xFF }}"; },
       StatusCode::kInvalidArgument, "tokenizer.chat_template is not valid UTF-8"},
  };
}

class GgufTokenizerMalformedTest : public ::testing::TestWithParam<Malformed> {};

TEST_P(GgufTokenizerMalformedTest, GivesAClearError) {
  // 256 byte symbols, "12", "123" and <|eot_id|>: 259 tokens.
  OwnedData owned = ByteLevelVocab("gpt-2", {"1 2", "12 3"});
  ASSERT_NE(Build(owned.data), nullptr);
  GetParam().corrupt(owned);
  owned.Bind();
  auto tokenizer = TokenizerFromGgufData(owned.data, "bad.gguf");
  ASSERT_FALSE(tokenizer.ok());
  EXPECT_EQ(tokenizer.status().code(), GetParam().code) << tokenizer.status();
  EXPECT_THAT(tokenizer.status().message(), HasSubstr("bad.gguf: "));
  EXPECT_THAT(tokenizer.status().message(), HasSubstr(GetParam().message));
  EXPECT_FALSE(ConvertGgufTokenizer(owned.data, "bad.gguf").ok());
}

INSTANTIATE_TEST_SUITE_P(Inputs, GgufTokenizerMalformedTest, ::testing::ValuesIn(MalformedCases()),
                         [](const auto& info) { return info.param.name; });

TEST(GgufTokenizer, UnknownPreNamesTheSupportedOnes) {
  OwnedData owned = ByteLevelVocab("nope", {"1 2"});
  auto tokenizer = TokenizerFromGgufData(owned.data, "x.gguf");
  ASSERT_FALSE(tokenizer.ok());
  EXPECT_THAT(tokenizer.status().message(), HasSubstr("'nope'"));
  for (const char* name : {"default", "llama-bpe", "llama3", "qwen2", "smollm", "gpt-2"}) {
    EXPECT_THAT(tokenizer.status().message(), HasSubstr(name));
  }
}

}  // namespace
}  // namespace pagoda
