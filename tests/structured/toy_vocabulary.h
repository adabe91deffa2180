// A small vocabulary for the structured-output tests: id 0 is EOS (the stop id), id 1 a special
// token (never allowed), then every single byte, then merged tokens that span JSON structure
// (`":"`, `"},{"`), multi-byte UTF-8 characters, pieces of characters and longer words.
#pragma once

#include <memory>

#include "structured/token_vocabulary.h"

namespace pagoda::structured::testing {

inline constexpr int32_t kToyEos = 0;

std::shared_ptr<const TokenVocabulary> ToyVocabulary();

}  // namespace pagoda::structured::testing
