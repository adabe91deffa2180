// A hostile OpenAI request body, for /v1/completions, /v1/chat/completions, /tokenize and
// /detokenize: the JSON parser, the request parsers, then what the router does next with a
// parsed request — the chat template over its messages, tokenization, validation against the
// serving limits, detokenization of ids in the vocabulary.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/chat_template/chat_template.h"
#include "router/frontend/openai_protocol.h"
#include "router/frontend/request_validation.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

void Validate(const pagoda::Tokenizer& tokenizer, const pagoda::GenerationInput& input) {
  const std::vector<int32_t> ids = input.text.has_value()
                                       ? tokenizer.Encode(*input.text, input.add_special_tokens)
                                       : input.token_ids;
  (void)pagoda::ValidateGenerationRequest(
      ids, input.params, {.max_model_len = 2048, .vocab_size = tokenizer.vocab_size(), .max_n = 4});
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const pagoda::ChatTemplate* chatml = new pagoda::ChatTemplate(
      pagoda::ChatTemplate::Parse(pagoda::fuzz::ReadTestData("chat_templates/smollm2.jinja"))
          .value());
  const pagoda::Tokenizer& tokenizer = pagoda::fuzz::TestTokenizer("gpt2_tokenizer");
  absl::StatusOr<nlohmann::json> body =
      pagoda::ParseJsonBody(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!body.ok()) return 0;
  if (absl::StatusOr<pagoda::CompletionRequest> completion = pagoda::ParseCompletionRequest(*body);
      completion.ok()) {
    for (const pagoda::GenerationInput& prompt : completion->prompts) Validate(tokenizer, prompt);
  }
  if (absl::StatusOr<pagoda::ChatCompletionRequest> chat =
          pagoda::ParseChatCompletionRequest(*body);
      chat.ok()) {
    absl::StatusOr<std::string> prompt = chatml->Render(chat->messages, true);
    if (prompt.ok()) {
      Validate(tokenizer, {.text = *prompt,
                           .add_special_tokens = chat->add_special_tokens,
                           .params = chat->params});
    }
  }
  if (absl::StatusOr<pagoda::TokenizeRequest> tokenize = pagoda::ParseTokenizeRequest(*body);
      tokenize.ok()) {
    absl::StatusOr<std::string> text =
        tokenize->prompt.has_value()
            ? absl::StatusOr<std::string>(*tokenize->prompt)
            : chatml->Render(tokenize->messages, tokenize->add_generation_prompt,
                             {{"tools", tokenize->tools}});
    if (text.ok()) (void)tokenizer.Encode(*text, tokenize->add_special_tokens);
  }
  if (absl::StatusOr<pagoda::DetokenizeRequest> detokenize = pagoda::ParseDetokenizeRequest(*body);
      detokenize.ok()) {
    std::vector<int32_t> known;
    for (int32_t id : detokenize->tokens) {
      if (id < tokenizer.vocab_size() && tokenizer.IdToToken(id).has_value()) known.push_back(id);
    }
    (void)tokenizer.Decode(known, /*skip_special_tokens=*/false);
  }
  return 0;
}
