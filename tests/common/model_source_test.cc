// ModelSource opens "a model" — a Hugging Face directory or a GGUF file — for every command and
// the router: its config, and on demand its tokenizer and chat template (from tokenizer.json /
// tokenizer_config.json, or from the GGUF's tokenizer.ggml.* and tokenizer.chat_template keys,
// through TokenizerFromGguf). GGUF fixtures come from tests/data/make_gguf_fixtures.py.
#include "common/model_source.h"

#include <string>

#include "common/tokenizer/gguf_tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/stories260k.h"

namespace pagoda {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string Fixture(const std::string& name) {
  return std::string(PAGODA_GGUF_FIXTURE_DIR) + "/" + name;
}

TEST(ModelSource, OpensAHuggingFaceDirectory) {
  absl::StatusOr<ModelSource> model = ModelSource::Open(testing::Stories260KDir() + "/");
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_FALSE(model->is_gguf());
  EXPECT_EQ(model->gguf(), nullptr);
  EXPECT_EQ(model->config().architecture, "LlamaForCausalLM");
  EXPECT_EQ(model->DefaultName(),
            testing::Stories260KDir().substr(testing::Stories260KDir().find_last_of('/') + 1));
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = model->LoadTokenizer();
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_EQ((*tokenizer)->vocab_size(), model->config().vocab_size);
  EXPECT_EQ(model->LoadChatTemplate().status().code(), absl::StatusCode::kNotFound);
}

TEST(ModelSource, OpensAGgufFileWithItsTokenizerAndChatTemplate) {
  absl::StatusOr<ModelSource> model = ModelSource::Open(Fixture("tiny_llama.gguf"));
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_TRUE(model->is_gguf());
  ASSERT_NE(model->gguf(), nullptr);
  EXPECT_EQ(model->DefaultName(), "tiny_llama");
  EXPECT_EQ(model->config().architecture, "LlamaForCausalLM");
  EXPECT_EQ(model->config().vocab_size, 32);
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = model->LoadTokenizer();
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_EQ((*tokenizer)->vocab_size(), 32);
  EXPECT_EQ((*tokenizer)->bos_token_id(), 1);
  EXPECT_EQ((*tokenizer)->eos_token_id(), 2);
  EXPECT_EQ((*tokenizer)->IdToToken(3), "tok3");
  absl::StatusOr<ChatTemplate> chat = model->LoadChatTemplate();
  ASSERT_TRUE(chat.ok()) << chat.status();
  const nlohmann::json messages = {{{"role", "user"}, {"content", "hi"}},
                                   {{"role", "assistant"}, {"content", " there"}}};
  EXPECT_EQ(chat->Render(messages, false).value(), "hi there");
}

TEST(GgufTokenizerDataFromFile, ReadsEveryTokenizerKeyAndTheTokenizerValidatesThem) {
  absl::StatusOr<std::unique_ptr<GgufFile>> file = GgufFile::Open(Fixture("tiny_qwen2.gguf"));
  ASSERT_TRUE(file.ok()) << file.status();
  absl::StatusOr<GgufTokenizerData> data = GgufTokenizerDataFromFile(**file);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->model, "gpt2");
  EXPECT_EQ(data->pre, "qwen2");
  ASSERT_EQ(data->tokens.size(), 16u);
  EXPECT_EQ(data->tokens[3], "t3");
  EXPECT_THAT(data->merges, ElementsAre("t 1", "t1 0"));
  EXPECT_EQ(data->token_types.size(), 16u);
  EXPECT_TRUE(data->scores.empty());
  EXPECT_EQ(data->eos, 14);
  EXPECT_EQ(data->eot, 15);
  EXPECT_FALSE(data->bos.has_value());
  EXPECT_TRUE(data->chat_template.empty());
  // This reader fixture's merges name pieces its vocabulary lacks: the tokenizer says which.
  const absl::Status status = TokenizerFromGguf(**file).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("tiny_qwen2.gguf"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("tokenizer.ggml.merges[0]"));
}

TEST(ModelSource, AGgufWithoutATokenizerOrTemplateSaysSo) {
  absl::StatusOr<ModelSource> model = ModelSource::Open(Fixture("tiny_llama3.gguf"));
  ASSERT_TRUE(model.ok()) << model.status();
  const absl::Status tokenizer = model->LoadTokenizer().status();
  EXPECT_EQ(tokenizer.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(tokenizer.message()), HasSubstr("tokenizer.ggml.model"));
  EXPECT_THAT(std::string(tokenizer.message()), HasSubstr("tiny_llama3.gguf"));
  EXPECT_EQ(model->LoadChatTemplate().status().code(), absl::StatusCode::kNotFound);
}

// A GGUF's quantized rows must not be split inside a block: tiny_llama's blk.0.ffn_down is Q4_K
// (256-weight blocks) with 256 columns, so only one rank can hold its rows whole, although its
// heads would split over 2 or 4. Dummy weights are not quantized.
TEST(ModelSource, ATensorParallelSizeThatSplitsAQuantizedBlockIsRefusedUpFront) {
  absl::StatusOr<ModelSource> model = ModelSource::Open(Fixture("tiny_llama.gguf"));
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_TRUE(CheckTensorParallelSize(*model, 1).ok());
  const absl::Status status = CheckTensorParallelSize(*model, 2);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("blk.0.ffn_down.weight is q4_K (256-element blocks): tensor parallel "
                        "size 2 would split its rows inside a block; tensor parallel sizes that "
                        "work for this model: 1"));
  EXPECT_TRUE(CheckTensorParallelSize(*model, 2, /*dummy_weights=*/true).ok());
  EXPECT_THAT(std::string(CheckTensorParallelSize(*model, 3).message()),
              HasSubstr("num_attention_heads (4) is not divisible"));
  absl::StatusOr<ModelSource> dir = ModelSource::Open(testing::Stories260KDir());
  ASSERT_TRUE(dir.ok());
  EXPECT_TRUE(CheckTensorParallelSize(*dir, 2).ok());
}

TEST(ModelSource, NamesWhatIsNeitherADirectoryNorAGgufFile) {
  const absl::Status missing = ModelSource::Open("/nonexistent/model").status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.message()), HasSubstr("/nonexistent/model"));
  EXPECT_THAT(std::string(missing.message()), HasSubstr(".gguf"));
  EXPECT_EQ(ModelSource::Open("").status().code(), absl::StatusCode::kInvalidArgument);
  // A directory without config.json.
  EXPECT_EQ(ModelSource::Open(PAGODA_GGUF_FIXTURE_DIR).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace pagoda
