#include "router/frontend/request_validation.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/tokenizer/bad_words.h"

namespace pagoda {

absl::Status ValidateGenerationRequest(const std::vector<int32_t>& prompt_token_ids,
                                       const SamplingParams& params, const ServingLimits& limits) {
  if (prompt_token_ids.empty()) {
    return absl::InvalidArgumentError("prompt: must not be empty");
  }
  for (size_t i = 0; i < prompt_token_ids.size(); ++i) {
    const int32_t id = prompt_token_ids[i];
    if (id < 0 || id >= limits.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("prompt: token id ", id, " at position ", i,
                                                     " is outside the vocabulary [0, ",
                                                     limits.vocab_size, ")"));
    }
  }
  const int64_t prompt_len = static_cast<int64_t>(prompt_token_ids.size());
  if (prompt_len >= limits.max_model_len) {
    return absl::InvalidArgumentError(
        absl::StrCat("prompt: ", prompt_len, " tokens do not fit the model's context of ",
                     limits.max_model_len, " tokens (at least one must be left to generate)"));
  }
  const int64_t max_tokens_limit = limits.max_tokens > 0
                                       ? std::min<int64_t>(limits.max_tokens, limits.max_model_len)
                                       : limits.max_model_len;
  if (params.max_tokens < 1 || params.max_tokens > max_tokens_limit) {
    return absl::InvalidArgumentError(absl::StrCat("max_tokens: must be in [1, ", max_tokens_limit,
                                                   "], got ", params.max_tokens));
  }
  if (prompt_len + params.max_tokens > limits.max_model_len) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_tokens: the model's context is ", limits.max_model_len, " tokens, but ", prompt_len,
        " prompt tokens + max_tokens ", params.max_tokens, " = ", prompt_len + params.max_tokens));
  }
  if (params.n > limits.max_n) {
    return absl::InvalidArgumentError(
        absl::StrCat("n: must be at most ", limits.max_n, " on this server, got ", params.n));
  }
  if (params.beam_width > limits.max_n) {
    return absl::InvalidArgumentError(absl::StrCat("beam_width: must be at most ", limits.max_n,
                                                   " on this server, got ", params.beam_width));
  }
  for (int32_t id : params.stop_token_ids) {
    if (id >= limits.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "stop_token_ids: ", id, " is outside the vocabulary [0, ", limits.vocab_size, ")"));
    }
  }
  for (const auto& [id, bias] : params.logit_bias) {
    if (id >= limits.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "logit_bias: token ", id, " is outside the vocabulary [0, ", limits.vocab_size, ")"));
    }
  }
  for (int32_t id : params.allowed_token_ids) {
    if (id >= limits.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "allowed_token_ids: ", id, " is outside the vocabulary [0, ", limits.vocab_size, ")"));
    }
  }
  for (const std::vector<int32_t>& ids : params.bad_words_token_ids) {
    for (int32_t id : ids) {
      if (id >= limits.vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat(
            "bad_words: token ", id, " is outside the vocabulary [0, ", limits.vocab_size, ")"));
      }
    }
  }
  const absl::Status status = params.Validate();
  if (status.ok()) return status;
  // SamplingParams says "sampling parameter FIELD must ..."; lead with the field like the rest.
  constexpr std::string_view kPrefix = "sampling parameter ";
  std::string message(status.message());
  if (message.rfind(kPrefix, 0) == 0) {
    message.erase(0, kPrefix.size());
    const size_t space = message.find(' ');
    if (space != std::string::npos) message.insert(space, ":");
  }
  return absl::InvalidArgumentError(message);
}

absl::Status TokenizeBadWords(const Tokenizer& tokenizer, SamplingParams& params) {
  if (!params.bad_words_token_ids.empty()) {
    return absl::InvalidArgumentError(
        "bad_words_token_ids: the server fills it from bad_words; leave it empty");
  }
  // The bounds Validate() checks, before the words cost any tokenization.
  if (params.bad_words.size() > SamplingParams::kMaxBadWords) {
    return absl::InvalidArgumentError(absl::StrCat("bad_words: at most ",
                                                   SamplingParams::kMaxBadWords, " words, got ",
                                                   params.bad_words.size()));
  }
  for (const std::string& word : params.bad_words) {
    if (word.size() > SamplingParams::kMaxBadWordBytes) {
      return absl::InvalidArgumentError(absl::StrCat("bad_words: a word may have at most ",
                                                     SamplingParams::kMaxBadWordBytes,
                                                     " bytes, got one of ", word.size()));
    }
  }
  params.bad_words_token_ids = BadWordsTokenIds(params.bad_words, tokenizer);
  return absl::OkStatus();
}

std::string InvalidField(const absl::Status& status) {
  if (!absl::IsInvalidArgument(status) && !absl::IsNotFound(status)) return "";
  const std::string message(status.message());
  const size_t colon = message.find(':');
  if (colon == std::string::npos) return "";
  const std::string field = message.substr(0, colon);
  return field.find(' ') == std::string::npos ? field : "";
}

}  // namespace pagoda
