// Validation of a generation request at the router's edge, shared by the gRPC and HTTP
// frontends: the prompt, the sampling parameters and the server's limits. Errors are
// InvalidArgument with a message that starts with the offending field ("max_tokens: ...") so a
// frontend can name it (OpenAI's error "param").
//
//   ServingLimits limits{.max_model_len = 2048, .vocab_size = 32000, .max_n = 16};
//   RETURN_IF_ERROR(ValidateGenerationRequest(prompt_token_ids, params, limits));
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/sampling_params.h"
#include "common/tokenizer/tokenizer.h"

namespace pagoda {

struct ServingLimits {
  int64_t max_model_len = 0;  // prompt + max_tokens must fit
  int64_t vocab_size = 0;     // token ids in [0, vocab_size)
  int32_t max_n = 16;         // most completions (n, beam width) per request
  /// Most tokens a request may ask for; 0: whatever fits the context.
  int32_t max_tokens = 0;
};

/// InvalidArgument naming the field: empty prompt, token ids outside the vocabulary (the prompt's,
/// and those of stop_token_ids, logit_bias, allowed_token_ids and bad_words), a prompt
/// (plus max_tokens) longer than the context, max_tokens outside [1, limit], n or beam width
/// above max_n, and every SamplingParams::Validate() error.
absl::Status ValidateGenerationRequest(const std::vector<int32_t>& prompt_token_ids,
                                       const SamplingParams& params, const ServingLimits& limits);

/// Fills params.bad_words_token_ids from params.bad_words with the served tokenizer (vLLM's rule:
/// common/tokenizer/bad_words.h). InvalidArgument naming bad_words for too many or too long words
/// (checked before tokenizing), or bad_words_token_ids when the client set that router-only field.
/// ValidateGenerationRequest then checks the ids against the vocabulary.
absl::Status TokenizeBadWords(const Tokenizer& tokenizer, SamplingParams& params);

/// The field an InvalidArgument (or NotFound, e.g. "model") error message starts with
/// ("max_tokens: ..."), or "".
std::string InvalidField(const absl::Status& status);

}  // namespace pagoda
