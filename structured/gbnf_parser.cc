#include "structured/gbnf_parser.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "structured/internal/utf8_ranges.h"

namespace pagoda::structured {
namespace {

using internal::kMaxCodePoint;
using Elements = std::vector<GrammarElement>;
using CodePointRanges = std::vector<std::pair<uint32_t, uint32_t>>;

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

class GbnfParser {
 public:
  explicit GbnfParser(std::string_view text) : text_(text) {}

  absl::StatusOr<Grammar> Parse(std::string_view root_name) {
    if (text_.size() > kMaxGbnfBytes) {
      return absl::InvalidArgumentError(absl::StrCat("GBNF: the grammar has ", text_.size(),
                                                     " bytes, over the limit of ", kMaxGbnfBytes));
    }
    SkipSpace();
    if (pos_ >= text_.size()) return Error(pos_, "the grammar has no rules");
    while (pos_ < text_.size()) {
      const size_t name_pos = pos_;
      ASSIGN_OR_RETURN(std::string name, ParseName());
      SkipSpace();
      if (text_.substr(pos_, 3) != "::=") return Error(pos_, "expected '::=' after the rule name");
      pos_ += 3;
      const int32_t id = RuleId(name, name_pos);
      if (defined_[id]) return Error(name_pos, absl::StrCat("rule '", name, "' is defined twice"));
      defined_[id] = true;
      std::vector<Elements> alts;
      RETURN_IF_ERROR(ParseAlternatives(id, &alts, 0));
      rules_[id].alternatives = std::move(alts);
      SkipSpace();
    }
    for (size_t id = 0; id < rules_.size(); ++id) {
      if (!defined_[id]) {
        return Error(first_use_[id], absl::StrCat("rule '", rules_[id].name, "' is not defined"));
      }
    }
    const auto root = ids_.find(std::string(root_name));
    if (root == ids_.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("GBNF: the grammar has no rule named '", std::string(root_name), "'"));
    }
    return Grammar::Create(std::move(rules_), std::move(sets_), root->second);
  }

 private:
  absl::Status Error(size_t pos, std::string_view what) const {
    int line = 1, column = 1;
    for (size_t i = 0; i < pos && i < text_.size(); ++i) {
      if (text_[i] == '\n') {
        ++line, column = 1;
      } else {
        ++column;
      }
    }
    return absl::InvalidArgumentError(
        absl::StrCat("GBNF line ", line, " column ", column, ": ", std::string(what)));
  }

  void SkipSpace() {
    while (pos_ < text_.size()) {
      const char c = text_[pos_];
      if (c == '#') {
        while (pos_ < text_.size() && text_[pos_] != '\n') ++pos_;
      } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        ++pos_;
      } else {
        break;
      }
    }
  }

  bool AtRuleStart() const {
    size_t p = pos_;
    while (p < text_.size() && IsNameChar(text_[p])) ++p;
    if (p == pos_) return false;
    while (p < text_.size() && (text_[p] == ' ' || text_[p] == '\t')) ++p;
    return text_.substr(p, 3) == "::=";
  }

  absl::StatusOr<std::string> ParseName() {
    const size_t start = pos_;
    while (pos_ < text_.size() && IsNameChar(text_[pos_])) ++pos_;
    if (pos_ == start) return Error(start, "expected a rule name");
    return std::string(text_.substr(start, pos_ - start));
  }

  int32_t RuleId(const std::string& name, size_t use_pos) {
    auto [it, inserted] = ids_.try_emplace(name, static_cast<int32_t>(rules_.size()));
    if (inserted) {
      rules_.push_back({.name = name});
      defined_.push_back(false);
      first_use_.push_back(use_pos);
    }
    return it->second;
  }

  int32_t NewHelperRule(int32_t parent, std::vector<Elements> alts) {
    const std::string base = rules_[parent].name;
    std::string name;
    do {
      name = absl::StrCat(base, "_", ++helper_count_);
    } while (ids_.contains(name));
    const int32_t id = RuleId(name, pos_);
    defined_[id] = true;
    rules_[id].alternatives = std::move(alts);
    return id;
  }

  int32_t SetId(const ByteSet& set) {
    auto [it, inserted] = set_ids_.try_emplace(set.words(), static_cast<int32_t>(sets_.size()));
    if (inserted) sets_.push_back(set);
    return it->second;
  }

  GrammarElement ByteElement(uint8_t lo, uint8_t hi) {
    ByteSet set;
    set.AddRange(lo, hi);
    return {.kind = GrammarElement::Kind::kBytes, .index = SetId(set)};
  }

  absl::Status ParseAlternatives(int32_t rule, std::vector<Elements>* alts, int depth) {
    if (depth > kMaxGbnfNesting) {
      return Error(pos_, absl::StrCat("groups nested deeper than ", kMaxGbnfNesting));
    }
    while (true) {
      Elements seq;
      RETURN_IF_ERROR(ParseSequence(rule, &seq, depth));
      alts->push_back(std::move(seq));
      SkipSpace();
      if (pos_ < text_.size() && text_[pos_] == '|') {
        ++pos_;
        continue;
      }
      return absl::OkStatus();
    }
  }

  absl::Status ParseSequence(int32_t rule, Elements* seq, int depth) {
    while (true) {
      SkipSpace();
      if (pos_ >= text_.size() || text_[pos_] == '|' || text_[pos_] == ')' || AtRuleStart()) {
        return absl::OkStatus();
      }
      const size_t atom_pos = pos_;
      Elements atom;
      const char c = text_[pos_];
      if (c == '"') {
        ++pos_;
        while (true) {
          if (pos_ >= text_.size()) return Error(atom_pos, "unterminated literal");
          if (text_[pos_] == '"') break;
          ASSIGN_OR_RETURN(uint32_t cp, ParseChar());
          for (char b : internal::EncodeUtf8(cp)) {
            atom.push_back(ByteElement(static_cast<uint8_t>(b), static_cast<uint8_t>(b)));
          }
        }
        ++pos_;
      } else if (c == '[') {
        ASSIGN_OR_RETURN(CodePointRanges ranges, ParseClass());
        atom.push_back(ClassElement(rule, ranges));
      } else if (c == '.') {
        ++pos_;
        atom.push_back(ClassElement(rule, {{0, kMaxCodePoint}}));
      } else if (c == '(') {
        ++pos_;
        std::vector<Elements> alts;
        RETURN_IF_ERROR(ParseAlternatives(rule, &alts, depth + 1));
        SkipSpace();
        if (pos_ >= text_.size() || text_[pos_] != ')') return Error(atom_pos, "unclosed '('");
        ++pos_;
        if (alts.size() == 1) {
          atom = std::move(alts[0]);
        } else {
          atom.push_back(
              {.kind = GrammarElement::Kind::kRule, .index = NewHelperRule(rule, std::move(alts))});
        }
      } else if (IsNameChar(c)) {
        ASSIGN_OR_RETURN(std::string name, ParseName());
        atom.push_back({.kind = GrammarElement::Kind::kRule, .index = RuleId(name, atom_pos)});
      } else {
        return Error(pos_, absl::StrCat("unexpected character '", std::string(1, c), "'"));
      }
      RETURN_IF_ERROR(ParsePostfix(rule, &atom));
      seq->insert(seq->end(), atom.begin(), atom.end());
    }
  }

  absl::Status ParsePostfix(int32_t rule, Elements* atom) {
    if (pos_ >= text_.size()) return absl::OkStatus();
    const char c = text_[pos_];
    int min = 0, max = -1;  // max -1: unbounded
    if (c == '*') {
      ++pos_;
    } else if (c == '+') {
      ++pos_, min = 1;
    } else if (c == '?') {
      ++pos_, max = 1;
    } else if (c == '{') {
      const size_t start = pos_++;
      ASSIGN_OR_RETURN(min, ParseCount(start));
      if (pos_ < text_.size() && text_[pos_] == '}') {
        max = min;
      } else if (pos_ < text_.size() && text_[pos_] == ',') {
        ++pos_;
        SkipSpace();
        if (pos_ < text_.size() && text_[pos_] != '}') {
          ASSIGN_OR_RETURN(max, ParseCount(start));
          if (max < min) return Error(start, "repetition {m,n} with n < m");
        }
      }
      SkipSpace();
      if (pos_ >= text_.size() || text_[pos_] != '}') return Error(start, "unterminated '{'");
      ++pos_;
    } else {
      return absl::OkStatus();
    }
    if (pos_ < text_.size() && (text_[pos_] == '*' || text_[pos_] == '+' || text_[pos_] == '?')) {
      return Error(pos_, "a repetition operator after another one");
    }
    GrammarElement item = (*atom)[0];
    if (atom->size() != 1) {
      item = {.kind = GrammarElement::Kind::kRule, .index = NewHelperRule(rule, {*atom})};
    }
    atom->clear();
    for (int i = 0; i < min; ++i) atom->push_back(item);
    if (max == -1) {  // r ::= r item | "" (left recursion: constant Earley work per item)
      const int32_t star = NewHelperRule(rule, {});
      rules_[star].alternatives = {{{.kind = GrammarElement::Kind::kRule, .index = star}, item},
                                   {}};
      atom->push_back({.kind = GrammarElement::Kind::kRule, .index = star});
    } else if (max > min) {  // o_k ::= item o_{k-1} | ""
      int32_t next = NewHelperRule(rule, {{item}, {}});
      for (int k = 2; k <= max - min; ++k) {
        next =
            NewHelperRule(rule, {{item, {.kind = GrammarElement::Kind::kRule, .index = next}}, {}});
      }
      atom->push_back({.kind = GrammarElement::Kind::kRule, .index = next});
    }
    return absl::OkStatus();
  }

  absl::StatusOr<int> ParseCount(size_t start) {
    SkipSpace();
    const size_t digits = pos_;
    int value = 0;
    while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
      value = value * 10 + (text_[pos_++] - '0');
      if (value > kMaxGbnfRepetition) {
        return Error(start,
                     absl::StrCat("repetition count over the limit of ", kMaxGbnfRepetition));
      }
    }
    if (pos_ == digits) return Error(pos_, "expected a number in '{m,n}'");
    SkipSpace();
    return value;
  }

  // One code point of a literal or class, escapes decoded.
  absl::StatusOr<uint32_t> ParseChar() {
    const size_t start = pos_;
    if (text_[pos_] != '\\') {
      uint32_t cp = 0;
      const std::string rest(text_.substr(pos_, 4));
      size_t used = 0;
      if (!internal::DecodeUtf8(rest, &used, &cp)) return Error(start, "invalid UTF-8");
      pos_ += used;
      return cp;
    }
    if (++pos_ >= text_.size()) return Error(start, "a '\\' at the end of the grammar");
    const char e = text_[pos_++];
    int hex_digits = 0;
    switch (e) {
      case 'n':
        return uint32_t{'\n'};
      case 'r':
        return uint32_t{'\r'};
      case 't':
        return uint32_t{'\t'};
      case '\\':
      case '"':
      case '\'':
      case '[':
      case ']':
      case '-':
      case '^':
      case '/':
        return static_cast<uint32_t>(e);
      case 'x':
        hex_digits = 2;
        break;
      case 'u':
        hex_digits = 4;
        break;
      case 'U':
        hex_digits = 8;
        break;
      default:
        return Error(start, absl::StrCat("unknown escape '\\", std::string(1, e), "'"));
    }
    uint32_t cp = 0;
    for (int i = 0; i < hex_digits; ++i) {
      if (pos_ >= text_.size() || !std::isxdigit(static_cast<unsigned char>(text_[pos_]))) {
        return Error(start,
                     absl::StrCat("'\\", std::string(1, e), "' needs ", hex_digits, " hex digits"));
      }
      const char h = text_[pos_++];
      cp = cp * 16 + (h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10);
    }
    if (cp > kMaxCodePoint || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return Error(start, "the escape is not a Unicode scalar value");
    }
    return cp;
  }

  absl::StatusOr<CodePointRanges> ParseClass() {
    const size_t start = pos_++;
    bool negated = false;
    if (pos_ < text_.size() && text_[pos_] == '^') negated = true, ++pos_;
    CodePointRanges ranges;
    while (true) {
      if (pos_ >= text_.size()) return Error(start, "unterminated character class");
      if (text_[pos_] == ']') break;
      ASSIGN_OR_RETURN(uint32_t lo, ParseChar());
      uint32_t hi = lo;
      if (pos_ + 1 < text_.size() && text_[pos_] == '-' && text_[pos_ + 1] != ']') {
        ++pos_;
        ASSIGN_OR_RETURN(hi, ParseChar());
        if (hi < lo) return Error(start, "a class range whose end is below its start");
      }
      ranges.push_back({lo, hi});
    }
    ++pos_;
    std::sort(ranges.begin(), ranges.end());
    if (!negated) return ranges;
    CodePointRanges complement;
    uint32_t next = 0;
    for (const auto& [lo, hi] : ranges) {
      if (lo > next) complement.push_back({next, lo - 1});
      next = std::max(next, hi + 1);
    }
    if (next <= kMaxCodePoint) complement.push_back({next, kMaxCodePoint});
    return complement;
  }

  // A class as one byte-set element (all ASCII) or a helper rule of UTF-8 sequences.
  GrammarElement ClassElement(int32_t rule, const CodePointRanges& ranges) {
    ByteSet single;
    std::vector<Elements> alts;
    for (const auto& [lo, hi] : ranges) {
      for (const internal::Utf8Sequence& seq : internal::Utf8Sequences(lo, hi)) {
        if (seq.size() == 1) {
          single.AddRange(seq[0].first, seq[0].second);
          continue;
        }
        Elements alt;
        for (const auto& [blo, bhi] : seq) alt.push_back(ByteElement(blo, bhi));
        alts.push_back(std::move(alt));
      }
    }
    const GrammarElement single_element{.kind = GrammarElement::Kind::kBytes,
                                        .index = SetId(single)};
    if (alts.empty()) return single_element;  // an empty set: derives nothing
    if (!single.empty()) alts.insert(alts.begin(), {single_element});
    return {.kind = GrammarElement::Kind::kRule, .index = NewHelperRule(rule, std::move(alts))};
  }

  std::string_view text_;
  size_t pos_ = 0;
  std::vector<GrammarRule> rules_;
  std::vector<bool> defined_;
  std::vector<size_t> first_use_;
  absl::flat_hash_map<std::string, int32_t> ids_;
  std::vector<ByteSet> sets_;
  std::map<std::array<uint64_t, 4>, int32_t> set_ids_;
  int helper_count_ = 0;
};

}  // namespace

std::string GbnfLiteral(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    const auto b = static_cast<uint8_t>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (b < 0x20 || b == 0x7F) {
      absl::StrAppend(&out, absl::StrFormat("\\x%02X", b));
    } else {
      out += c;
    }
  }
  return out + "\"";
}

absl::StatusOr<Grammar> ParseGbnf(std::string_view text, std::string_view root_rule) {
  return GbnfParser(text).Parse(root_rule);
}

}  // namespace pagoda::structured
