#include "common/tokenizer/token_decoder.h"

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/status_macros.h"
#include "common/tokenizer/tokenizer_json_util.h"
#include "common/unicode_util.h"

namespace pagoda {
namespace {

class ByteLevelDecoder final : public TokenDecoder {
 public:
  void Decode(std::vector<std::string>& tokens) const override {
    const ByteUnicodeTable& table = ByteUnicodeTable::Get();
    std::string bytes;
    for (const std::string& token : tokens) {
      // A token with a character outside the byte table (an added token) is kept verbatim.
      std::string mapped;
      bool all_mapped = true;
      for (size_t pos = 0; pos < token.size();) {
        const int byte = table.Decode(DecodeUtf8At(token, pos));
        if (byte < 0) {
          all_mapped = false;
          break;
        }
        mapped.push_back(static_cast<char>(byte));
        pos += Utf8CharLength(token, pos);
      }
      bytes.append(all_mapped ? mapped : token);
    }
    tokens.assign(1, std::move(bytes));
  }
};

// "<0xNN>" -> the byte NN.
std::optional<char> ParseByteToken(std::string_view token) {
  if (token.size() != 6 || token.substr(0, 3) != "<0x" || token[5] != '>') return std::nullopt;
  int value = 0;
  for (char c : token.substr(3, 2)) {
    int digit = 0;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'A' && c <= 'F') {
      digit = c - 'A' + 10;
    } else if (c >= 'a' && c <= 'f') {
      digit = c - 'a' + 10;
    } else {
      return std::nullopt;
    }
    value = value * 16 + digit;
  }
  return static_cast<char>(value);
}

class ByteFallbackDecoder final : public TokenDecoder {
 public:
  void Decode(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    out.reserve(tokens.size());
    std::string pending_bytes;
    bool in_bytes = false;
    for (std::string& token : tokens) {
      const std::optional<char> byte = ParseByteToken(token);
      if (byte.has_value()) {
        pending_bytes.push_back(*byte);
        in_bytes = true;
        continue;
      }
      if (in_bytes) {
        out.push_back(std::move(pending_bytes));
        pending_bytes.clear();
        in_bytes = false;
      }
      out.push_back(std::move(token));
    }
    if (in_bytes) out.push_back(std::move(pending_bytes));
    tokens = std::move(out);
  }
};

class FuseDecoder final : public TokenDecoder {
 public:
  void Decode(std::vector<std::string>& tokens) const override {
    std::string fused;
    for (const std::string& token : tokens) fused.append(token);
    tokens.assign(1, std::move(fused));
  }
};

class ReplaceDecoder final : public TokenDecoder {
 public:
  ReplaceDecoder(std::string pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void Decode(std::vector<std::string>& tokens) const override {
    if (pattern_.empty()) return;
    for (std::string& token : tokens) token = absl::StrReplaceAll(token, {{pattern_, content_}});
  }

 private:
  std::string pattern_;
  std::string content_;
};

class StripDecoder final : public TokenDecoder {
 public:
  StripDecoder(std::string content, int64_t start, int64_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  void Decode(std::vector<std::string>& tokens) const override {
    for (std::string& token : tokens) {
      std::string_view rest = token;
      for (int64_t i = 0; i < start_ && rest.substr(0, content_.size()) == content_; ++i) {
        rest.remove_prefix(content_.size());
      }
      for (int64_t i = 0; i < stop_ && rest.size() >= content_.size() &&
                          rest.substr(rest.size() - content_.size()) == content_;
           ++i) {
        rest.remove_suffix(content_.size());
      }
      token = std::string(rest);
    }
  }

 private:
  std::string content_;  // one character
  int64_t start_;
  int64_t stop_;
};

class MetaspaceDecoder final : public TokenDecoder {
 public:
  MetaspaceDecoder(std::string replacement, bool strip_first)
      : replacement_(std::move(replacement)), strip_first_(strip_first) {}
  void Decode(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      // As tokenizers does: in the first token every replacement character is dropped.
      tokens[i] =
          absl::StrReplaceAll(tokens[i], {{replacement_, i == 0 && strip_first_ ? "" : " "}});
    }
  }

 private:
  std::string replacement_;
  bool strip_first_;
};

class BpeSuffixDecoder final : public TokenDecoder {
 public:
  explicit BpeSuffixDecoder(std::string suffix) : suffix_(std::move(suffix)) {}
  void Decode(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      tokens[i] = absl::StrReplaceAll(tokens[i], {{suffix_, i + 1 == tokens.size() ? "" : " "}});
    }
  }

 private:
  std::string suffix_;
};

class SequenceDecoder final : public TokenDecoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<TokenDecoder>> steps)
      : steps_(std::move(steps)) {}
  void Decode(std::vector<std::string>& tokens) const override {
    for (const auto& step : steps_) step->Decode(tokens);
  }

 private:
  std::vector<std::unique_ptr<TokenDecoder>> steps_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<TokenDecoder>> TokenDecoder::FromJson(const nlohmann::json& json,
                                                                     std::string_view source) {
  if (json.is_null()) return std::unique_ptr<TokenDecoder>();
  ASSIGN_OR_RETURN(const std::string type, GetType(json, "decoder", source));
  const std::string where = absl::StrCat(std::string(source), ": decoder ", type);
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Replace") {
    bool is_regex = false;
    ASSIGN_OR_RETURN(std::string pattern, GetPattern(json, where, &is_regex));
    if (is_regex) {
      return absl::UnimplementedError(absl::StrCat(where, ": regex patterns are not supported"));
    }
    ASSIGN_OR_RETURN(std::string content, GetString(json, "content", where));
    return std::make_unique<ReplaceDecoder>(std::move(pattern), std::move(content));
  }
  if (type == "Strip") {
    ASSIGN_OR_RETURN(std::string content, GetString(json, "content", where));
    ASSIGN_OR_RETURN(const int64_t start, GetInt(json, "start", where, 0));
    ASSIGN_OR_RETURN(const int64_t stop, GetInt(json, "stop", where, 0));
    if (content.empty()) return JsonFieldError(where, "content", "must not be empty");
    return std::make_unique<StripDecoder>(std::move(content), start, stop);
  }
  if (type == "Metaspace") {
    ASSIGN_OR_RETURN(std::string replacement, GetString(json, "replacement", where));
    if (replacement.empty()) return JsonFieldError(where, "replacement", "must not be empty");
    ASSIGN_OR_RETURN(bool strip_first, GetBool(json, "add_prefix_space", where, true));
    ASSIGN_OR_RETURN(const std::optional<std::string> scheme,
                     GetOptionalString(json, "prepend_scheme", where));
    if (scheme.has_value()) strip_first = *scheme != "never";
    return std::make_unique<MetaspaceDecoder>(std::move(replacement), strip_first);
  }
  if (type == "BPEDecoder") {
    ASSIGN_OR_RETURN(const std::optional<std::string> suffix,
                     GetOptionalString(json, "suffix", where));
    return std::make_unique<BpeSuffixDecoder>(suffix.value_or("</w>"));
  }
  if (type == "Sequence") {
    if (!json.contains("decoders") || !json.at("decoders").is_array()) {
      return JsonFieldError(where, "decoders", "must be an array");
    }
    std::vector<std::unique_ptr<TokenDecoder>> steps;
    for (const nlohmann::json& step_json : json.at("decoders")) {
      ASSIGN_OR_RETURN(std::unique_ptr<TokenDecoder> step, FromJson(step_json, source));
      if (step != nullptr) steps.push_back(std::move(step));
    }
    return std::make_unique<SequenceDecoder>(std::move(steps));
  }
  return absl::UnimplementedError(
      absl::StrCat(std::string(source), ": unsupported decoder type '", type, "'"));
}

}  // namespace pagoda
