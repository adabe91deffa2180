#include "structured/regex_grammar.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "structured/gbnf_parser.h"
#include "structured/internal/utf8_ranges.h"

namespace pagoda::structured {
namespace {

using internal::kMaxCodePoint;
using Ranges = std::vector<std::pair<uint32_t, uint32_t>>;

constexpr int kMaxRegexNesting = 64;

Ranges Normalize(Ranges r) {
  std::sort(r.begin(), r.end());
  Ranges out;
  for (const auto& [lo, hi] : r) {
    if (!out.empty() && lo <= out.back().second + 1) {
      out.back().second = std::max(out.back().second, hi);
    } else {
      out.push_back({lo, hi});
    }
  }
  return out;
}

Ranges Complement(const Ranges& r) {
  Ranges out;
  uint32_t next = 0;
  for (const auto& [lo, hi] : Normalize(r)) {
    if (lo > next) out.push_back({next, lo - 1});
    next = hi + 1;
  }
  if (next <= kMaxCodePoint) out.push_back({next, kMaxCodePoint});
  return out;
}

Ranges Subtract(const Ranges& a, const Ranges& b) {
  // a minus b = a intersected with the complement of b.
  Ranges out;
  const Ranges nb = Complement(b);
  for (const auto& [alo, ahi] : Normalize(a)) {
    for (const auto& [blo, bhi] : nb) {
      const uint32_t lo = std::max(alo, blo), hi = std::min(ahi, bhi);
      if (lo <= hi) out.push_back({lo, hi});
    }
  }
  return out;
}

bool Contains(const Ranges& r, uint32_t cp) {
  for (const auto& [lo, hi] : r) {
    if (cp >= lo && cp <= hi) return true;
  }
  return false;
}

std::string ClassChar(uint32_t cp) {
  if ((cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z')) {
    return std::string(1, static_cast<char>(cp));
  }
  return cp <= 0xFFFF ? absl::StrFormat("\\u%04X", cp) : absl::StrFormat("\\U%08X", cp);
}

std::string GbnfClass(const Ranges& ranges) {
  std::string out = "[";
  for (const auto& [lo, hi] : ranges) {
    absl::StrAppend(&out, ClassChar(lo));
    if (hi > lo) absl::StrAppend(&out, "-", ClassChar(hi));
  }
  return out + "]";
}

const Ranges kDigit = {{'0', '9'}};
const Ranges kWord = {{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}};
// ECMAScript's \s: WhiteSpace and LineTerminator.
const Ranges kSpace = {{'\t', '\r'},     {' ', ' '},       {0xA0, 0xA0},     {0x1680, 0x1680},
                       {0x2000, 0x200A}, {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F},
                       {0x3000, 0x3000}, {0xFEFF, 0xFEFF}};

class RegexConverter {
 public:
  RegexConverter(std::string_view pattern, bool json) : pattern_(pattern), json_(json) {}

  absl::StatusOr<std::string> Convert() {
    if (pattern_.size() > kMaxRegexBytes) {
      return absl::InvalidArgumentError(absl::StrCat("regex: the pattern has ", pattern_.size(),
                                                     " bytes, over the limit of ", kMaxRegexBytes));
    }
    const std::string text(pattern_);
    for (size_t pos = 0; pos < text.size();) {
      uint32_t cp = 0;
      if (!internal::DecodeUtf8(text, &pos, &cp)) {
        return absl::InvalidArgumentError("regex: the pattern is not valid UTF-8");
      }
      cps_.push_back(cp);
    }
    if (!cps_.empty() && cps_[0] == '^') ++pos_;
    if (!cps_.empty() && cps_.back() == '$' && (cps_.size() < 2 || cps_[cps_.size() - 2] != '\\')) {
      cps_.pop_back();
    }
    ASSIGN_OR_RETURN(std::string expr, ParseAlternation(0));
    if (pos_ < cps_.size()) return Error("an unmatched ')'");
    return expr;
  }

 private:
  absl::Status Error(std::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(
        "regex '", std::string(pattern_), "' at character ", pos_, ": ", std::string(what)));
  }
  bool AtEnd() const { return pos_ >= cps_.size(); }
  uint32_t Peek() const { return cps_[pos_]; }

  absl::StatusOr<std::string> ParseAlternation(int depth) {
    if (depth > kMaxRegexNesting) return Error("groups nested too deeply");
    std::vector<std::string> alts;
    while (true) {
      ASSIGN_OR_RETURN(std::string seq, ParseSequence(depth));
      alts.push_back(seq.empty() ? "\"\"" : seq);
      if (AtEnd() || Peek() != '|') break;
      ++pos_;
    }
    if (alts.size() == 1) return alts[0];
    std::string out = "(";
    for (size_t i = 0; i < alts.size(); ++i) absl::StrAppend(&out, i ? " | " : "", alts[i]);
    return out + ")";
  }

  absl::StatusOr<std::string> ParseSequence(int depth) {
    std::string out;
    while (!AtEnd() && Peek() != '|' && Peek() != ')') {
      ASSIGN_OR_RETURN(std::string atom, ParseAtom(depth));
      ASSIGN_OR_RETURN(std::string quantifier, ParseQuantifier());
      if (!quantifier.empty()) atom = absl::StrCat("(", atom, ")", quantifier);
      absl::StrAppend(&out, out.empty() ? "" : " ", atom);
    }
    return out;
  }

  absl::StatusOr<std::string> ParseQuantifier() {
    if (AtEnd()) return std::string();
    std::string q;
    const uint32_t c = Peek();
    if (c == '*' || c == '+' || c == '?') {
      ++pos_;
      q = std::string(1, static_cast<char>(c));
    } else if (c == '{') {
      const size_t start = pos_++;
      std::string body;
      while (!AtEnd() && Peek() != '}') {
        const uint32_t d = cps_[pos_++];
        if (!((d >= '0' && d <= '9') || d == ',')) {
          pos_ = start;
          return Error("a malformed {m,n} quantifier");
        }
        body += static_cast<char>(d);
      }
      if (AtEnd() || body.empty() || body[0] == ',') {
        pos_ = start;
        return Error("a malformed {m,n} quantifier");
      }
      ++pos_;
      q = absl::StrCat("{", body, "}");
    } else {
      return std::string();
    }
    if (!AtEnd() && Peek() == '?') ++pos_;  // lazy: the same strings
    if (!AtEnd() && (Peek() == '*' || Peek() == '+' || Peek() == '{')) {
      return Error("a quantifier after a quantifier");
    }
    return q;
  }

  absl::StatusOr<std::string> ParseAtom(int depth) {
    const uint32_t c = cps_[pos_];
    switch (c) {
      case '(': {
        ++pos_;
        if (!AtEnd() && Peek() == '?') {
          if (pos_ + 1 < cps_.size() && cps_[pos_ + 1] == ':') {
            pos_ += 2;
          } else if (pos_ + 1 < cps_.size() && cps_[pos_ + 1] == '<' && pos_ + 2 < cps_.size() &&
                     cps_[pos_ + 2] != '=' && cps_[pos_ + 2] != '!') {
            while (!AtEnd() && Peek() != '>') ++pos_;
            if (AtEnd()) return Error("an unterminated group name");
            ++pos_;
          } else {
            return Error("lookarounds and inline flags (?...) are not supported");
          }
        }
        ASSIGN_OR_RETURN(std::string inner, ParseAlternation(depth + 1));
        if (AtEnd() || Peek() != ')') return Error("an unclosed '('");
        ++pos_;
        return absl::StrCat("(", inner, ")");
      }
      case '[':
        return ParseClass();
      case '.':
        ++pos_;
        return Class(Complement({{'\n', '\n'}, {'\r', '\r'}}));
      case '^':
      case '$':
        return Error("anchors ^ and $ are supported only at the ends of the pattern");
      case '*':
      case '+':
      case '?':
      case '{':
        return Error("a quantifier with nothing to repeat");
      case '\\': {
        ASSIGN_OR_RETURN(Ranges r, ParseEscape(/*in_class=*/false));
        return Class(r);
      }
      default:
        ++pos_;
        return Class({{c, c}});
    }
  }

  // An escape after '\': a class (\d ...) or one character, as ranges.
  absl::StatusOr<Ranges> ParseEscape(bool in_class) {
    ++pos_;
    if (AtEnd()) return Error("a '\\' at the end of the pattern");
    const uint32_t e = cps_[pos_++];
    switch (e) {
      case 'd':
        return kDigit;
      case 'D':
        return Complement(kDigit);
      case 'w':
        return kWord;
      case 'W':
        return Complement(kWord);
      case 's':
        return kSpace;
      case 'S':
        return Complement(kSpace);
      case 'n':
        return Ranges{{'\n', '\n'}};
      case 'r':
        return Ranges{{'\r', '\r'}};
      case 't':
        return Ranges{{'\t', '\t'}};
      case 'f':
        return Ranges{{'\f', '\f'}};
      case 'v':
        return Ranges{{'\v', '\v'}};
      case '0':
        return Ranges{{0, 0}};
      case 'x':
      case 'u': {
        uint32_t cp = 0;
        if (e == 'u' && !AtEnd() && Peek() == '{') {
          ++pos_;
          int digits = 0;
          while (!AtEnd() && Peek() != '}' && digits < 7) {
            ASSIGN_OR_RETURN(uint32_t d, HexDigit());
            cp = cp * 16 + d, ++digits;
          }
          if (AtEnd() || Peek() != '}' || digits == 0) return Error("a malformed \\u{...}");
          ++pos_;
        } else {
          for (int i = 0; i < (e == 'x' ? 2 : 4); ++i) {
            ASSIGN_OR_RETURN(uint32_t d, HexDigit());
            cp = cp * 16 + d;
          }
        }
        if (cp > kMaxCodePoint) return Error("an escape beyond U+10FFFF");
        return Ranges{{cp, cp}};
      }
      case 'b':
        if (in_class) return Ranges{{'\b', '\b'}};
        return Error("\\b (word boundary) is not supported");
      case 'B':
        return Error("\\B (word boundary) is not supported");
      default:
        if (e >= '1' && e <= '9') return Error("backreferences are not supported");
        if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z')) {
          return Error(absl::StrCat("the escape \\", std::string(1, static_cast<char>(e)),
                                    " is not supported"));
        }
        return Ranges{{e, e}};
    }
  }

  absl::StatusOr<uint32_t> HexDigit() {
    if (AtEnd()) return Error("a hex escape cut short");
    const uint32_t h = cps_[pos_++];
    if (h >= '0' && h <= '9') return h - '0';
    if ((h | 0x20) >= 'a' && (h | 0x20) <= 'f') return (h | 0x20) - 'a' + 10;
    return Error("a hex escape with a non-hex digit");
  }

  absl::StatusOr<std::string> ParseClass() {
    const size_t start = pos_++;
    bool negated = false;
    if (!AtEnd() && Peek() == '^') negated = true, ++pos_;
    Ranges ranges;
    bool first = true;
    while (true) {
      if (AtEnd()) {
        pos_ = start;
        return Error("an unterminated character class");
      }
      if (Peek() == ']' && !first) break;
      first = false;
      ASSIGN_OR_RETURN(Ranges lo, ClassAtom());
      if (lo.size() == 1 && lo[0].first == lo[0].second && pos_ + 1 < cps_.size() &&
          Peek() == '-' && cps_[pos_ + 1] != ']') {
        ++pos_;
        ASSIGN_OR_RETURN(Ranges hi, ClassAtom());
        if (hi.size() != 1 || hi[0].first != hi[0].second)
          return Error("a range ending in a class");
        if (hi[0].first < lo[0].first) return Error("a class range out of order");
        ranges.push_back({lo[0].first, hi[0].first});
      } else {
        ranges.insert(ranges.end(), lo.begin(), lo.end());
      }
    }
    ++pos_;
    return Class(negated ? Complement(ranges) : ranges);
  }

  absl::StatusOr<Ranges> ClassAtom() {
    if (Peek() == '\\') return ParseEscape(/*in_class=*/true);
    const uint32_t c = cps_[pos_++];
    return Ranges{{c, c}};
  }

  // A set of characters as GBNF; inside a JSON string, each as its JSON text.
  std::string Class(const Ranges& raw) {
    const Ranges ranges = Normalize(raw);
    if (!json_) {
      if (ranges.size() == 1 && ranges[0].first == ranges[0].second) {
        return GbnfLiteral(internal::EncodeUtf8(ranges[0].first));
      }
      return GbnfClass(ranges);
    }
    std::vector<std::string> alts;
    const Ranges plain = Subtract(ranges, {{0, 0x1F}, {'"', '"'}, {'\\', '\\'}});
    if (!plain.empty()) {
      alts.push_back(plain.size() == 1 && plain[0].first == plain[0].second
                         ? GbnfLiteral(internal::EncodeUtf8(plain[0].first))
                         : GbnfClass(plain));
    }
    static const std::pair<uint32_t, const char*> kEscapes[] = {
        {'"', "\\\""}, {'\\', "\\\\"}, {'\n', "\\n"}, {'\r', "\\r"},
        {'\t', "\\t"}, {'\b', "\\b"},  {'\f', "\\f"}};
    for (const auto& [cp, escaped] : kEscapes) {
      if (Contains(ranges, cp)) alts.push_back(GbnfLiteral(escaped));
    }
    for (uint32_t cp = 0; cp < 0x20; ++cp) {
      if (Contains(ranges, cp) && cp != '\n' && cp != '\r' && cp != '\t' && cp != '\b' &&
          cp != '\f') {
        alts.push_back(GbnfLiteral(absl::StrFormat("\\u%04x", cp)));
      }
    }
    if (alts.empty()) return "[^\\x00-\\U0010FFFF]";  // matches nothing
    if (alts.size() == 1) return alts[0];
    std::string out = "(";
    for (size_t i = 0; i < alts.size(); ++i) absl::StrAppend(&out, i ? " | " : "", alts[i]);
    return out + ")";
  }

  std::string_view pattern_;
  bool json_;
  std::vector<uint32_t> cps_;
  size_t pos_ = 0;
};

}  // namespace

absl::StatusOr<std::string> RegexToGbnfExpression(std::string_view pattern,
                                                  bool inside_json_string) {
  return RegexConverter(pattern, inside_json_string).Convert();
}

absl::StatusOr<Grammar> RegexToGrammar(std::string_view pattern) {
  ASSIGN_OR_RETURN(std::string expr, RegexToGbnfExpression(pattern, false));
  return ParseGbnf(absl::StrCat("root ::= ", expr, "\n"));
}

absl::StatusOr<Grammar> ChoiceToGrammar(const std::vector<std::string>& choices) {
  if (choices.empty()) return absl::InvalidArgumentError("choice: the list of choices is empty");
  std::string gbnf = "root ::= ";
  for (size_t i = 0; i < choices.size(); ++i) {
    absl::StrAppend(&gbnf, i ? " | " : "", choices[i].empty() ? "\"\"" : GbnfLiteral(choices[i]));
  }
  return ParseGbnf(gbnf);
}

}  // namespace pagoda::structured
