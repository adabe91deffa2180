// Lexer for the Jinja2 subset; see jinja_lexer.h.
#include "common/chat_template/internal/jinja_lexer.h"

#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace pagoda::jinja {

absl::Status SyntaxError(int line, int column, const std::string& message) {
  return absl::InvalidArgumentError(absl::StrCat("chat template syntax error at line ", line,
                                                 ", column ", column, ": ", message));
}

namespace {

class Lexer {
 public:
  explicit Lexer(const std::string& src) : src_(src) {}

  absl::StatusOr<std::vector<Token>> Run() {
    bool strip_next_text = false;
    while (pos_ < src_.size()) {
      size_t open = FindTagOpen(pos_);
      std::string text = src_.substr(pos_, open - pos_);
      int text_line = line_, text_col = col_;
      Advance(open - pos_);
      if (strip_next_text) {
        size_t i = 0;
        while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
        text.erase(0, i);
        strip_next_text = false;
      }
      if (open < src_.size()) {
        char kind = src_[open + 1];
        char modifier = open + 2 < src_.size() ? src_[open + 2] : '\0';
        if (modifier == '-') {
          while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
            text.pop_back();
          }
        } else if (kind != '{' && modifier != '+') {
          LstripBlock(text, open);
        }
      }
      if (!text.empty()) Push(Token::Kind::kText, text, text_line, text_col);
      if (open >= src_.size()) break;
      char kind = src_[open + 1];
      int tag_line = line_, tag_col = col_;
      Advance(2);
      if (pos_ < src_.size() && (src_[pos_] == '-' || src_[pos_] == '+')) Advance(1);
      bool strip_after = false;
      if (kind == '#') {
        size_t end = src_.find("#}", pos_);
        if (end == std::string::npos) return SyntaxError(tag_line, tag_col, "unclosed comment");
        strip_after = end > pos_ && src_[end - 1] == '-';
        Advance(end + 2 - pos_);
        if (!strip_after) SkipNewline();
        strip_next_text = strip_after;
        continue;
      }
      bool is_block = kind == '%';
      Push(is_block ? Token::Kind::kBlockBegin : Token::Kind::kVarBegin, "", tag_line, tag_col);
      ASSIGN_OR_RETURN(strip_after, LexTagBody(is_block ? '%' : '}', tag_line, tag_col));
      if (is_block && !strip_after && !keep_newline_) SkipNewline();
      keep_newline_ = false;
      strip_next_text = strip_after;
    }
    Push(Token::Kind::kEof, "", line_, col_);
    return std::move(tokens_);
  }

 private:
  size_t FindTagOpen(size_t from) const {
    for (size_t i = from; i + 1 < src_.size(); ++i) {
      if (src_[i] == '{' && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) {
        return i;
      }
    }
    return src_.size();
  }

  // lstrip_blocks: spaces and tabs between a line start and a block or comment tag go.
  void LstripBlock(std::string& text, size_t open) const {
    size_t i = text.size();
    while (i > 0 && (text[i - 1] == ' ' || text[i - 1] == '\t')) --i;
    size_t line_start_in_src = open - (text.size() - i);
    bool at_line_start = i > 0 ? text[i - 1] == '\n'
                               : (line_start_in_src == 0 || src_[line_start_in_src - 1] == '\n');
    if (at_line_start) text.erase(i);
  }

  void SkipNewline() {  // trim_blocks
    if (pos_ < src_.size() && src_[pos_] == '\n') {
      Advance(1);
    } else if (pos_ + 1 < src_.size() && src_[pos_] == '\r' && src_[pos_ + 1] == '\n') {
      Advance(2);
    }
  }

  void Advance(size_t n) {
    for (size_t i = 0; i < n && pos_ < src_.size(); ++i, ++pos_) {
      if (src_[pos_] == '\n') {
        ++line_;
        col_ = 1;
      } else {
        ++col_;
      }
    }
  }

  void Push(Token::Kind kind, std::string text, int line, int column) {
    Token t;
    t.kind = kind;
    t.text = std::move(text);
    t.line = line;
    t.column = column;
    tokens_.push_back(std::move(t));
  }

  // Lexes up to and including the closing `%}` or `}}`; returns whether it was `-%}`/`-}}`.
  absl::StatusOr<bool> LexTagBody(char close, int tag_line, int tag_col) {
    while (true) {
      while (pos_ < src_.size() && std::isspace(static_cast<unsigned char>(src_[pos_]))) {
        Advance(1);
      }
      if (pos_ >= src_.size()) return SyntaxError(tag_line, tag_col, "unclosed tag");
      char c = src_[pos_];
      auto at = [&](size_t k) { return pos_ + k < src_.size() ? src_[pos_ + k] : '\0'; };
      Token::Kind end_kind = close == '%' ? Token::Kind::kBlockEnd : Token::Kind::kVarEnd;
      if (c == '-' && at(1) == close && at(2) == '}') {
        Push(end_kind, "", line_, col_);
        Advance(3);
        return true;
      }
      if (c == '+' && close == '%' && at(1) == '%' && at(2) == '}') {  // `+%}`: no trim_blocks
        Push(end_kind, "", line_, col_);
        Advance(3);
        keep_newline_ = true;
        return false;
      }
      if (c == close && at(1) == '}') {
        Push(end_kind, "", line_, col_);
        Advance(2);
        return false;
      }
      int line = line_, col = col_;
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t start = pos_;
        while (pos_ < src_.size() &&
               (std::isalnum(static_cast<unsigned char>(src_[pos_])) || src_[pos_] == '_')) {
          Advance(1);
        }
        Push(Token::Kind::kName, src_.substr(start, pos_ - start), line, col);
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        size_t start = pos_;
        bool is_float = false;
        while (pos_ < src_.size()) {
          char d = src_[pos_];
          if (std::isdigit(static_cast<unsigned char>(d)) || d == '_') {
            Advance(1);
          } else if (d == '.' && !is_float && std::isdigit(static_cast<unsigned char>(at(1)))) {
            is_float = true;
            Advance(1);
          } else {
            break;
          }
        }
        std::string digits;
        for (char d : src_.substr(start, pos_ - start)) {
          if (d != '_') digits += d;
        }
        Push(is_float ? Token::Kind::kFloat : Token::Kind::kInt, digits, line, col);
        errno = 0;
        if (is_float) {
          tokens_.back().float_value = std::strtod(digits.c_str(), nullptr);
        } else {
          tokens_.back().int_value = std::strtoll(digits.c_str(), nullptr, 10);
          if (errno == ERANGE) return SyntaxError(line, col, "integer literal out of range");
        }
      } else if (c == '\'' || c == '"') {
        ASSIGN_OR_RETURN(std::string value, LexString(c, line, col));
        Push(Token::Kind::kString, std::move(value), line, col);
      } else {
        static const char* kTwoCharOps[] = {"==", "!=", "<=", ">=", "//", "**"};
        std::string op(1, c);
        for (const char* two : kTwoCharOps) {
          if (c == two[0] && at(1) == two[1]) op = two;
        }
        if (std::string("+-*/%~<>=!()[]{}.,:|").find(c) == std::string::npos || op == "!") {
          return SyntaxError(line, col, absl::StrCat("unexpected character '", op, "'"));
        }
        Advance(op.size());
        Push(Token::Kind::kOp, op, line, col);
      }
    }
  }

  absl::StatusOr<std::string> LexString(char quote, int line, int col) {
    Advance(1);
    std::string out;
    while (pos_ < src_.size() && src_[pos_] != quote) {
      char c = src_[pos_];
      if (c != '\\') {
        out += c;
        Advance(1);
        continue;
      }
      if (pos_ + 1 >= src_.size()) break;
      char e = src_[pos_ + 1];
      Advance(2);
      switch (e) {
        case 'n':
          out += '\n';
          break;
        case 't':
          out += '\t';
          break;
        case 'r':
          out += '\r';
          break;
        case '0':
          out += '\0';
          break;
        case '\\':
          out += '\\';
          break;
        case '\'':
          out += '\'';
          break;
        case '"':
          out += '"';
          break;
        case '\n':
          break;
        default:  // Python keeps unknown escapes verbatim
          out += '\\';
          out += e;
      }
    }
    if (pos_ >= src_.size()) return SyntaxError(line, col, "unterminated string literal");
    Advance(1);
    return out;
  }

  const std::string& src_;
  size_t pos_ = 0;
  int line_ = 1;
  int col_ = 1;
  std::vector<Token> tokens_;
  bool keep_newline_ = false;  // the tag just lexed ended in `+%}`
};

}  // namespace

absl::StatusOr<std::vector<Token>> Lex(const std::string& source) { return Lexer(source).Run(); }

}  // namespace pagoda::jinja
