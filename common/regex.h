// A compiled PCRE2 regular expression (UTF + UCP mode, JIT-compiled where the platform has it),
// for the tokenizer's Split pre-tokenizers and Replace normalizers, which ship Oniguruma-style
// patterns such as \p{L}, (?i:'s|'t) and the lookahead \s+(?!\S).
//
//   ASSIGN_OR_RETURN(std::unique_ptr<Regex> re, Regex::Compile(R"(\p{L}+|\s+)"));
//   for (const Regex::Match& m : re->FindAll(text)) { ... text.substr(m.begin, m.end - m.begin) }
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace pagoda {

class Regex {
 public:
  struct Match {
    size_t begin = 0;  // byte offsets into the searched text
    size_t end = 0;
  };

  /// Compiles `pattern`; `literal` matches the pattern text verbatim. Errors name the pattern
  /// and PCRE2's message.
  static absl::StatusOr<std::unique_ptr<Regex>> Compile(std::string_view pattern,
                                                        bool literal = false);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  /// All non-overlapping matches, left to right, in valid UTF-8 `text`. After an empty match the
  /// search resumes one character further. Thread-safe.
  std::vector<Match> FindAll(std::string_view text) const;

 private:
  explicit Regex(void* code) : code_(code) {}
  void* code_;  // pcre2_code_8*
};

}  // namespace pagoda
