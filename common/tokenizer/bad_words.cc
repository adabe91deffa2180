#include "common/tokenizer/bad_words.h"

#include <string_view>
#include <utility>

namespace pagoda {

std::vector<std::vector<int32_t>> BadWordsTokenIds(const std::vector<std::string>& bad_words,
                                                   const Tokenizer& tokenizer) {
  std::vector<std::vector<int32_t>> sequences;
  for (const std::string& word : bad_words) {
    // Python's str.lstrip(), for ASCII whitespace.
    const size_t start = word.find_first_not_of(" \t\n\r\f\v");
    if (start == std::string::npos) continue;
    const std::string_view stripped = std::string_view(word).substr(start);
    std::vector<int32_t> plain = tokenizer.Encode(stripped, /*add_special_tokens=*/false);
    if (plain.empty()) continue;
    std::vector<int32_t> spaced =
        tokenizer.Encode(" " + std::string(stripped), /*add_special_tokens=*/false);
    const bool distinct =
        !spaced.empty() && spaced.size() == plain.size() && spaced.front() != plain.front();
    sequences.push_back(std::move(plain));
    if (distinct) sequences.push_back(std::move(spaced));
  }
  return sequences;
}

}  // namespace pagoda
