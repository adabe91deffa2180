// vLLM's tokenization of the bad_words sampling parameter: the token id sequences a worker's
// sampler bans (SamplingParams::bad_words_token_ids). Runs where the tokenizer is: the router's
// Frontend, and `pagoda generate`.
//
// Each word, its leading whitespace removed, is encoded without special tokens as is (to ban it
// at the start of the text) and with a leading space (to ban it after another word). The spaced
// form is kept only when the tokenizer tells the two apart — its first token differs and it has
// as many tokens — so a tokenizer that prepends its own space marker ("▁") does not yield a
// second sequence that bans a lone space.
//
//   params.bad_words_token_ids = BadWordsTokenIds(params.bad_words, tokenizer);
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/tokenizer/tokenizer.h"

namespace pagoda {

/// The token id sequences of `bad_words`, in order, one or two a word; a word that encodes to no
/// token yields none.
std::vector<std::vector<int32_t>> BadWordsTokenIds(const std::vector<std::string>& bad_words,
                                                   const Tokenizer& tokenizer);

}  // namespace pagoda
