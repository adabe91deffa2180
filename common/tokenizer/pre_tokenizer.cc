#include "common/tokenizer/pre_tokenizer.h"

#include <functional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/regex.h"
#include "common/status_macros.h"
#include "common/tokenizer/tokenizer_json_util.h"
#include "common/unicode_util.h"

namespace pagoda {
namespace {

// GPT-2's pre-tokenization regex, used by ByteLevel(use_regex=true).
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct Span {
  size_t begin;
  size_t end;
  bool is_match;
};

// Finds the matches of a pattern in one piece.
using Matcher = std::function<std::vector<Regex::Match>(std::string_view)>;

Matcher RegexMatcher(std::shared_ptr<const Regex> regex) {
  return [regex = std::move(regex)](std::string_view text) { return regex->FindAll(text); };
}

// Every character for which `predicate` holds is one match.
Matcher CharMatcher(std::function<bool(char32_t)> predicate) {
  return [predicate = std::move(predicate)](std::string_view text) {
    std::vector<Regex::Match> matches;
    for (size_t pos = 0; pos < text.size();) {
      const size_t length = Utf8CharLength(text, pos);
      if (predicate(DecodeUtf8At(text, pos))) matches.push_back({pos, pos + length});
      pos += length;
    }
    return matches;
  };
}

// The matches and the gaps between them, covering the whole text (tokenizers' find_matches).
std::vector<Span> ToSpans(const std::vector<Regex::Match>& matches, size_t size, bool invert) {
  std::vector<Span> spans;
  size_t previous = 0;
  for (const Regex::Match& m : matches) {
    if (previous != m.begin) spans.push_back({previous, m.begin, invert});
    spans.push_back({m.begin, m.end, !invert});
    previous = m.end;
  }
  if (previous != size) spans.push_back({previous, size, invert});
  return spans;
}

// Applies a split behaviour to the spans; the result's spans are all kept.
std::vector<Span> ApplyBehavior(std::vector<Span> spans, SplitBehavior behavior) {
  std::vector<Span> out;
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::kIsolated:
      return spans;
    case SplitBehavior::kRemoved:
      for (const Span& s : spans) {
        if (!s.is_match) out.push_back(s);
      }
      return out;
    case SplitBehavior::kMergedWithPrevious:
      for (const Span& s : spans) {
        if (s.is_match && !previous_match && !out.empty()) {
          out.back().end = s.end;
        } else {
          out.push_back(s);
        }
        previous_match = s.is_match;
      }
      return out;
    case SplitBehavior::kMergedWithNext:
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->is_match && !previous_match && !out.empty()) {
          out.back().begin = it->begin;
        } else {
          out.push_back(*it);
        }
        previous_match = it->is_match;
      }
      return std::vector<Span>(out.rbegin(), out.rend());
    case SplitBehavior::kContiguous:
      for (const Span& s : spans) {
        if (s.is_match == previous_match && !out.empty()) {
          out.back().end = s.end;
        } else {
          out.push_back(s);
        }
        previous_match = s.is_match;
      }
      return out;
  }
  return spans;
}

void SplitInto(const PreToken& piece, const Matcher& matcher, SplitBehavior behavior, bool invert,
               std::vector<PreToken>& out) {
  const std::vector<Span> spans =
      ApplyBehavior(ToSpans(matcher(piece.text), piece.text.size(), invert), behavior);
  for (const Span& s : spans) {
    if (s.end <= s.begin) continue;
    out.push_back(
        PreToken{piece.text.substr(s.begin, s.end - s.begin), piece.at_start && s.begin == 0});
  }
}

class SplitPreTokenizer final : public PreTokenizer {
 public:
  SplitPreTokenizer(Matcher matcher, SplitBehavior behavior, bool invert)
      : matcher_(std::move(matcher)), behavior_(behavior), invert_(invert) {}
  std::vector<PreToken> PreTokenize(std::vector<PreToken> pieces) const override {
    std::vector<PreToken> out;
    out.reserve(pieces.size());
    for (const PreToken& piece : pieces) SplitInto(piece, matcher_, behavior_, invert_, out);
    return out;
  }

 private:
  Matcher matcher_;
  SplitBehavior behavior_;
  bool invert_;
};

class ByteLevelPreTokenizer final : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, std::shared_ptr<const Regex> regex)
      : add_prefix_space_(add_prefix_space), regex_(std::move(regex)) {}
  std::vector<PreToken> PreTokenize(std::vector<PreToken> pieces) const override {
    std::vector<PreToken> split;
    split.reserve(pieces.size());
    for (PreToken& piece : pieces) {
      if (add_prefix_space_ && (piece.text.empty() || piece.text[0] != ' ')) {
        piece.text = absl::StrCat(" ", piece.text);
      }
      if (regex_ != nullptr) {
        SplitInto(piece, RegexMatcher(regex_), SplitBehavior::kIsolated, false, split);
      } else if (!piece.text.empty()) {
        split.push_back(std::move(piece));
      }
    }
    const ByteUnicodeTable& table = ByteUnicodeTable::Get();
    for (PreToken& piece : split) piece.text = table.EncodeBytes(piece.text);
    return split;
  }

 private:
  bool add_prefix_space_;
  std::shared_ptr<const Regex> regex_;  // null: use_regex false
};

enum class PrependScheme { kFirst, kAlways, kNever };

class MetaspacePreTokenizer final : public PreTokenizer {
 public:
  MetaspacePreTokenizer(std::string replacement, PrependScheme scheme, bool split)
      : replacement_(std::move(replacement)), scheme_(scheme), split_(split) {}
  std::vector<PreToken> PreTokenize(std::vector<PreToken> pieces) const override {
    std::vector<PreToken> out;
    for (PreToken& piece : pieces) {
      std::string text;
      text.reserve(piece.text.size() + replacement_.size());
      for (char c : piece.text) {
        if (c == ' ') {
          text.append(replacement_);
        } else {
          text.push_back(c);
        }
      }
      const bool starts_with_replacement = text.compare(0, replacement_.size(), replacement_) == 0;
      if (!starts_with_replacement && (scheme_ == PrependScheme::kAlways ||
                                       (scheme_ == PrependScheme::kFirst && piece.at_start))) {
        text.insert(0, replacement_);
      }
      PreToken replaced{std::move(text), piece.at_start};
      if (split_) {
        const std::string_view rep = replacement_;
        SplitInto(
            replaced,
            [rep](std::string_view t) {
              std::vector<Regex::Match> matches;
              for (size_t pos = t.find(rep); pos != std::string_view::npos;
                   pos = t.find(rep, pos + rep.size())) {
                matches.push_back({pos, pos + rep.size()});
              }
              return matches;
            },
            SplitBehavior::kMergedWithNext, false, out);
      } else if (!replaced.text.empty()) {
        out.push_back(std::move(replaced));
      }
    }
    return out;
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
};

class SequencePreTokenizer final : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> steps)
      : steps_(std::move(steps)) {}
  std::vector<PreToken> PreTokenize(std::vector<PreToken> pieces) const override {
    for (const auto& step : steps_) pieces = step->PreTokenize(std::move(pieces));
    return pieces;
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

absl::StatusOr<SplitBehavior> ParseBehavior(const nlohmann::json& json, std::string_view where,
                                            SplitBehavior default_value) {
  ASSIGN_OR_RETURN(const std::optional<std::string> name,
                   GetOptionalString(json, "behavior", where));
  if (!name.has_value()) return default_value;
  static constexpr std::pair<std::string_view, SplitBehavior> kNames[] = {
      {"Removed", SplitBehavior::kRemoved},
      {"Isolated", SplitBehavior::kIsolated},
      {"MergedWithPrevious", SplitBehavior::kMergedWithPrevious},
      {"MergedWithNext", SplitBehavior::kMergedWithNext},
      {"Contiguous", SplitBehavior::kContiguous}};
  for (const auto& [text, behavior] : kNames) {
    if (std::string_view(*name) == text) return behavior;
  }
  return JsonFieldError(where, "behavior", absl::StrCat("has unknown value '", *name, "'"));
}

absl::StatusOr<std::shared_ptr<const Regex>> CompileIn(std::string_view pattern, bool literal,
                                                       std::string_view where) {
  auto regex = Regex::Compile(pattern, literal);
  if (!regex.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(where), ": ", regex.status().message()));
  }
  return std::shared_ptr<const Regex>(std::move(regex).value());
}

}  // namespace

absl::StatusOr<std::unique_ptr<PreTokenizer>> PreTokenizer::FromJson(const nlohmann::json& json,
                                                                     std::string_view source) {
  if (json.is_null()) return std::unique_ptr<PreTokenizer>();
  ASSIGN_OR_RETURN(const std::string type, GetType(json, "pre_tokenizer", source));
  const std::string where = absl::StrCat(std::string(source), ": pre_tokenizer ", type);
  if (type == "ByteLevel") {
    ASSIGN_OR_RETURN(const bool add_prefix_space, GetBool(json, "add_prefix_space", where, true));
    ASSIGN_OR_RETURN(const bool use_regex, GetBool(json, "use_regex", where, true));
    std::shared_ptr<const Regex> regex;
    if (use_regex) {
      ASSIGN_OR_RETURN(regex, CompileIn(kGpt2Pattern, false, where));
    }
    return std::make_unique<ByteLevelPreTokenizer>(add_prefix_space, std::move(regex));
  }
  if (type == "Split") {
    bool is_regex = false;
    ASSIGN_OR_RETURN(const std::string pattern, GetPattern(json, where, &is_regex));
    ASSIGN_OR_RETURN(const SplitBehavior behavior,
                     ParseBehavior(json, where, SplitBehavior::kIsolated));
    ASSIGN_OR_RETURN(const bool invert, GetBool(json, "invert", where, false));
    ASSIGN_OR_RETURN(std::shared_ptr<const Regex> regex, CompileIn(pattern, !is_regex, where));
    return std::make_unique<SplitPreTokenizer>(RegexMatcher(std::move(regex)), behavior, invert);
  }
  if (type == "Digits") {
    ASSIGN_OR_RETURN(const bool individual, GetBool(json, "individual_digits", where, false));
    return std::make_unique<SplitPreTokenizer>(
        CharMatcher(IsUnicodeNumeric),
        individual ? SplitBehavior::kIsolated : SplitBehavior::kContiguous, false);
  }
  if (type == "Whitespace") {
    ASSIGN_OR_RETURN(std::shared_ptr<const Regex> regex,
                     CompileIn(R"(\w+|[^\w\s]+)", false, where));
    return std::make_unique<SplitPreTokenizer>(RegexMatcher(std::move(regex)),
                                               SplitBehavior::kRemoved, /*invert=*/true);
  }
  if (type == "WhitespaceSplit") {
    return std::make_unique<SplitPreTokenizer>(CharMatcher(IsUnicodeWhitespace),
                                               SplitBehavior::kRemoved, false);
  }
  if (type == "Punctuation") {
    ASSIGN_OR_RETURN(const SplitBehavior behavior,
                     ParseBehavior(json, where, SplitBehavior::kIsolated));
    return std::make_unique<SplitPreTokenizer>(CharMatcher(IsUnicodePunctuation), behavior, false);
  }
  if (type == "Metaspace") {
    ASSIGN_OR_RETURN(const std::string replacement, GetString(json, "replacement", where));
    if (replacement.empty()) return JsonFieldError(where, "replacement", "must not be empty");
    ASSIGN_OR_RETURN(const bool add_prefix_space, GetBool(json, "add_prefix_space", where, true));
    ASSIGN_OR_RETURN(const std::optional<std::string> scheme_name,
                     GetOptionalString(json, "prepend_scheme", where));
    PrependScheme scheme = add_prefix_space ? PrependScheme::kAlways : PrependScheme::kNever;
    if (scheme_name.has_value()) {
      if (*scheme_name == "first") {
        scheme = PrependScheme::kFirst;
      } else if (*scheme_name == "always") {
        scheme = PrependScheme::kAlways;
      } else if (*scheme_name == "never") {
        scheme = PrependScheme::kNever;
      } else {
        return JsonFieldError(where, "prepend_scheme", "must be first, always or never");
      }
    }
    ASSIGN_OR_RETURN(const bool split, GetBool(json, "split", where, true));
    return std::make_unique<MetaspacePreTokenizer>(replacement, scheme, split);
  }
  if (type == "Sequence") {
    if (!json.contains("pretokenizers") || !json.at("pretokenizers").is_array()) {
      return JsonFieldError(where, "pretokenizers", "must be an array");
    }
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (const nlohmann::json& step_json : json.at("pretokenizers")) {
      ASSIGN_OR_RETURN(std::unique_ptr<PreTokenizer> step, FromJson(step_json, source));
      if (step != nullptr) steps.push_back(std::move(step));
    }
    return std::make_unique<SequencePreTokenizer>(std::move(steps));
  }
  return absl::UnimplementedError(
      absl::StrCat(std::string(source), ": unsupported pre_tokenizer type '", type, "'"));
}

}  // namespace pagoda
