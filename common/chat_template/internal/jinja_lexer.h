// The lexer of the Jinja2 subset: template text and tags to tokens, applying whitespace control
// (`{%-`, `-%}`, `{%+`) and transformers' trim_blocks/lstrip_blocks as it goes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace pagoda::jinja {

struct Token {
  enum class Kind {
    kText,
    kVarBegin,
    kVarEnd,
    kBlockBegin,
    kBlockEnd,
    kName,
    kString,
    kInt,
    kFloat,
    kOp,
    kEof
  };
  Kind kind;
  std::string text;
  int64_t int_value = 0;
  double float_value = 0;
  int line = 1;
  int column = 1;
};

/// InvalidArgument "chat template syntax error at line L, column C: message".
absl::Status SyntaxError(int line, int column, const std::string& message);

/// Tokenizes template source; the last token is kEof.
absl::StatusOr<std::vector<Token>> Lex(const std::string& source);

}  // namespace pagoda::jinja
