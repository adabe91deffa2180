#include "common/tokenizer/normalizer.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/regex.h"
#include "common/status_macros.h"
#include "common/tokenizer/tokenizer_json_util.h"
#include "common/unicode_util.h"

namespace pagoda {
namespace {

class UnicodeNormalizer final : public Normalizer {
 public:
  explicit UnicodeNormalizer(NormalizationForm form) : form_(form) {}
  std::string Normalize(std::string_view text) const override {
    return NormalizeUnicode(text, form_);
  }

 private:
  NormalizationForm form_;
};

class LowercaseNormalizer final : public Normalizer {
 public:
  std::string Normalize(std::string_view text) const override { return LowercaseUtf8(text); }
};

class StripAccentsNormalizer final : public Normalizer {
 public:
  std::string Normalize(std::string_view text) const override { return StripAccents(text); }
};

class StripNormalizer final : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  std::string Normalize(std::string_view text) const override {
    size_t begin = 0;
    size_t end = text.size();
    if (left_) {
      while (begin < end && IsUnicodeWhitespace(DecodeUtf8At(text, begin))) {
        begin += Utf8CharLength(text, begin);
      }
    }
    if (right_) {
      while (end > begin) {
        size_t last = end - 1;
        while (last > begin && (static_cast<uint8_t>(text[last]) & 0xC0) == 0x80) --last;
        if (!IsUnicodeWhitespace(DecodeUtf8At(text, last))) break;
        end = last;
      }
    }
    return std::string(text.substr(begin, end - begin));
  }

 private:
  bool left_;
  bool right_;
};

class PrependNormalizer final : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  std::string Normalize(std::string_view text) const override {
    if (text.empty()) return std::string();
    return absl::StrCat(prefix_, std::string(text));
  }

 private:
  std::string prefix_;
};

class ReplaceNormalizer final : public Normalizer {
 public:
  ReplaceNormalizer(std::unique_ptr<Regex> pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  std::string Normalize(std::string_view text) const override {
    std::string out;
    out.reserve(text.size());
    size_t last = 0;
    for (const Regex::Match& m : pattern_->FindAll(text)) {
      out.append(text.substr(last, m.begin - last));
      out.append(content_);
      last = m.end;
    }
    out.append(text.substr(last));
    return out;
  }

 private:
  std::unique_ptr<Regex> pattern_;
  std::string content_;
};

class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> steps)
      : steps_(std::move(steps)) {}
  std::string Normalize(std::string_view text) const override {
    std::string current(text);
    for (const auto& step : steps_) current = step->Normalize(current);
    return current;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Normalizer>> Normalizer::FromJson(const nlohmann::json& json,
                                                                 std::string_view source) {
  if (json.is_null()) return std::unique_ptr<Normalizer>();
  ASSIGN_OR_RETURN(const std::string type, GetType(json, "normalizer", source));
  const std::string where = absl::StrCat(std::string(source), ": normalizer ", type);
  if (type == "NFC") return std::make_unique<UnicodeNormalizer>(NormalizationForm::kNfc);
  if (type == "NFD") return std::make_unique<UnicodeNormalizer>(NormalizationForm::kNfd);
  if (type == "NFKC") return std::make_unique<UnicodeNormalizer>(NormalizationForm::kNfkc);
  if (type == "NFKD") return std::make_unique<UnicodeNormalizer>(NormalizationForm::kNfkd);
  if (type == "Lowercase") return std::make_unique<LowercaseNormalizer>();
  if (type == "StripAccents") return std::make_unique<StripAccentsNormalizer>();
  if (type == "Strip") {
    ASSIGN_OR_RETURN(const bool left, GetBool(json, "strip_left", where, true));
    ASSIGN_OR_RETURN(const bool right, GetBool(json, "strip_right", where, true));
    return std::make_unique<StripNormalizer>(left, right);
  }
  if (type == "Prepend") {
    ASSIGN_OR_RETURN(std::string prefix, GetString(json, "prepend", where));
    return std::make_unique<PrependNormalizer>(std::move(prefix));
  }
  if (type == "Replace") {
    bool is_regex = false;
    ASSIGN_OR_RETURN(const std::string pattern, GetPattern(json, where, &is_regex));
    ASSIGN_OR_RETURN(std::string content, GetString(json, "content", where));
    auto regex = Regex::Compile(pattern, /*literal=*/!is_regex);
    if (!regex.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": ", regex.status().message()));
    }
    return std::make_unique<ReplaceNormalizer>(std::move(regex).value(), std::move(content));
  }
  if (type == "Sequence") {
    if (!json.contains("normalizers") || !json.at("normalizers").is_array()) {
      return JsonFieldError(where, "normalizers", "must be an array");
    }
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (const nlohmann::json& step_json : json.at("normalizers")) {
      ASSIGN_OR_RETURN(std::unique_ptr<Normalizer> step, FromJson(step_json, source));
      if (step != nullptr) steps.push_back(std::move(step));
    }
    return std::make_unique<SequenceNormalizer>(std::move(steps));
  }
  return absl::UnimplementedError(
      absl::StrCat(std::string(source), ": unsupported normalizer type '", type, "'"));
}

}  // namespace pagoda
