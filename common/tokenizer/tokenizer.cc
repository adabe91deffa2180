#include "common/tokenizer/tokenizer.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/json_util.h"
#include "common/status_macros.h"
#include "common/tokenizer/added_vocabulary.h"
#include "common/tokenizer/bpe_model.h"
#include "common/tokenizer/normalizer.h"
#include "common/tokenizer/pre_tokenizer.h"
#include "common/tokenizer/token_decoder.h"
#include "common/tokenizer/tokenizer_json_util.h"
#include "common/unicode_util.h"
#include "nlohmann/json.hpp"

namespace pagoda {
namespace {

using nlohmann::json;

// The ids a post-processor puts around a single sequence.
struct Template {
  std::vector<int32_t> prefix;
  std::vector<int32_t> suffix;
};

absl::StatusOr<int32_t> SpecialTokenId(const json& special_tokens, const std::string& name,
                                       std::string_view where) {
  if (!special_tokens.is_object() || !special_tokens.contains(name) ||
      !special_tokens.at(name).is_object() || !special_tokens.at(name).contains("ids") ||
      !special_tokens.at(name).at("ids").is_array() ||
      special_tokens.at(name).at("ids").size() != 1 ||
      !special_tokens.at(name).at("ids")[0].is_number_integer()) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(where), ": special_tokens has no single id for '", name, "'"));
  }
  return special_tokens.at(name).at("ids")[0].get<int32_t>();
}

absl::StatusOr<Template> ParsePostProcessor(const json& processor, std::string_view source) {
  Template result;
  if (processor.is_null()) return result;
  ASSIGN_OR_RETURN(const std::string type, GetType(processor, "post_processor", source));
  const std::string where = absl::StrCat(std::string(source), ": post_processor ", type);
  if (type == "ByteLevel") return result;
  if (type == "TemplateProcessing") {
    if (!processor.contains("single") || !processor.at("single").is_array()) {
      return JsonFieldError(where, "single", "must be an array");
    }
    const json special_tokens = processor.value("special_tokens", json::object());
    bool seen_sequence = false;
    for (const json& item : processor.at("single")) {
      if (item.is_object() && item.contains("Sequence")) {
        seen_sequence = true;
      } else if (item.is_object() && item.contains("SpecialToken") &&
                 item.at("SpecialToken").is_object()) {
        ASSIGN_OR_RETURN(const std::string name, GetString(item.at("SpecialToken"), "id", where));
        ASSIGN_OR_RETURN(const int32_t id, SpecialTokenId(special_tokens, name, where));
        (seen_sequence ? result.suffix : result.prefix).push_back(id);
      } else {
        return JsonFieldError(where, "single", absl::StrCat("has an invalid item ", item.dump()));
      }
    }
    return result;
  }
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    for (const char* field : {"cls", "sep"}) {
      if (!processor.contains(field) || !processor.at(field).is_array() ||
          processor.at(field).size() != 2 || !processor.at(field)[1].is_number_integer()) {
        return JsonFieldError(where, field, "must be [token, id]");
      }
    }
    result.prefix.push_back(processor.at("cls")[1].get<int32_t>());
    result.suffix.push_back(processor.at("sep")[1].get<int32_t>());
    return result;
  }
  if (type == "Sequence") {
    if (!processor.contains("processors") || !processor.at("processors").is_array()) {
      return JsonFieldError(where, "processors", "must be an array");
    }
    for (const json& step : processor.at("processors")) {
      ASSIGN_OR_RETURN(Template inner, ParsePostProcessor(step, source));
      result.prefix.insert(result.prefix.begin(), inner.prefix.begin(), inner.prefix.end());
      result.suffix.insert(result.suffix.end(), inner.suffix.begin(), inner.suffix.end());
    }
    return result;
  }
  return absl::UnimplementedError(
      absl::StrCat(std::string(source), ": unsupported post_processor type '", type, "'"));
}

// bos_token / eos_token in tokenizer_config.json: a string, {"content": ...}, or null.
absl::StatusOr<std::optional<std::string>> ConfigToken(const json& config, const char* field,
                                                       std::string_view source) {
  if (!config.contains(field) || config.at(field).is_null()) return std::optional<std::string>();
  const json& value = config.at(field);
  if (value.is_string()) return std::optional<std::string>(value.get<std::string>());
  if (value.is_object()) {
    ASSIGN_OR_RETURN(std::string content, GetString(value, "content", source));
    return std::optional<std::string>(std::move(content));
  }
  return JsonFieldError(source, field, "must be a string, an object with 'content', or null");
}

absl::StatusOr<std::string> ConfigChatTemplate(const json& config, std::string_view source) {
  if (!config.contains("chat_template") || config.at("chat_template").is_null()) return "";
  const json& value = config.at("chat_template");
  if (value.is_string()) return value.get<std::string>();
  if (value.is_array()) {
    std::string first;
    for (const json& entry : value) {
      if (!entry.is_object() || !entry.contains("template") || !entry.at("template").is_string()) {
        return JsonFieldError(source, "chat_template", "entries must be {name, template}");
      }
      const std::string text = entry.at("template").get<std::string>();
      if (entry.value("name", json()).is_string() && entry.at("name") == "default") return text;
      if (first.empty()) first = text;
    }
    return first;
  }
  return JsonFieldError(source, "chat_template", "must be a string or a list of templates");
}

class HfTokenizer final : public Tokenizer {
 public:
  std::vector<int32_t> Encode(std::string_view text, bool add_special_tokens) const override;
  std::string Decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const override;

  int64_t vocab_size() const override { return std::max(model_->vocab_size(), added_->id_limit()); }
  std::optional<std::string> IdToToken(int32_t id) const override {
    if (const AddedToken* added = added_->FindById(id)) return added->content;
    if (const std::string* token = model_->IdToToken(id)) return *token;
    return std::nullopt;
  }
  std::optional<int32_t> TokenToId(std::string_view token) const override {
    if (std::optional<int32_t> id = added_->FindByContent(token)) return id;
    return model_->TokenToId(token);
  }
  bool IsSpecial(int32_t id) const override {
    const AddedToken* added = added_->FindById(id);
    return added != nullptr && added->special;
  }
  std::optional<int32_t> bos_token_id() const override { return bos_id_; }
  std::optional<int32_t> eos_token_id() const override { return eos_id_; }
  const std::string& chat_template() const override { return chat_template_; }

  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<TokenDecoder> decoder_;
  std::unique_ptr<AddedVocabulary> added_;
  Template template_;
  std::optional<int32_t> bos_id_;
  std::optional<int32_t> eos_id_;
  std::string chat_template_;

 private:
  void EncodeSegment(std::string_view segment, bool at_start, std::vector<int32_t>& ids) const;
};

void HfTokenizer::EncodeSegment(std::string_view segment, bool at_start,
                                std::vector<int32_t>& ids) const {
  std::vector<PreToken> words = {PreToken{std::string(segment), at_start}};
  if (pre_tokenizer_ != nullptr) words = pre_tokenizer_->PreTokenize(std::move(words));
  for (const PreToken& word : words) model_->Tokenize(word.text, ids);
}

std::vector<int32_t> HfTokenizer::Encode(std::string_view text, bool add_special_tokens) const {
  const std::string clean = SanitizeUtf8(text);
  std::vector<int32_t> ids;
  if (add_special_tokens) ids = template_.prefix;
  for (const AddedVocabulary::Piece& piece : added_->SplitRaw(clean)) {
    if (piece.id >= 0) {
      ids.push_back(piece.id);
      continue;
    }
    const std::string normalized =
        normalizer_ != nullptr ? normalizer_->Normalize(piece.text) : std::string(piece.text);
    for (const AddedVocabulary::Piece& inner : added_->SplitNormalized(normalized)) {
      if (inner.id >= 0) {
        ids.push_back(inner.id);
      } else {
        EncodeSegment(inner.text, piece.offset == 0 && inner.offset == 0, ids);
      }
    }
  }
  if (add_special_tokens) ids.insert(ids.end(), template_.suffix.begin(), template_.suffix.end());
  return ids;
}

std::string HfTokenizer::Decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (const AddedToken* added = added_->FindById(id)) {
      if (!(skip_special_tokens && added->special)) tokens.push_back(added->content);
    } else if (const std::string* token = model_->IdToToken(id)) {
      tokens.push_back(*token);
    }
  }
  if (decoder_ == nullptr) return absl::StrJoin(tokens, " ");
  decoder_->Decode(tokens);
  return absl::StrJoin(tokens, "");
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Build(std::string_view tokenizer_json,
                                                 std::string_view config_json,
                                                 std::string_view source) {
  absl::StatusOr<json> parsed = ParseJson(tokenizer_json);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(source), ": tokenizer.json ", parsed.status().message()));
  }
  const json& root = *parsed;
  if (!root.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(source), ": tokenizer.json must hold a JSON object"));
  }
  json config = json::object();
  if (!config_json.empty()) {
    absl::StatusOr<json> parsed_config = ParseJson(config_json);
    if (!parsed_config.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          std::string(source), ": tokenizer_config.json ", parsed_config.status().message()));
    }
    config = std::move(*parsed_config);
    if (!config.is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat(std::string(source), ": tokenizer_config.json is not a valid JSON object"));
    }
  }
  const std::string config_source = absl::StrCat(std::string(source), " (tokenizer_config.json)");

  auto tokenizer = std::make_unique<HfTokenizer>();
  if (!root.contains("model") || !root.at("model").is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(source), ": tokenizer.json has no \"model\" object"));
  }
  const json& model = root.at("model");
  std::string model_type = "BPE";  // old files leave out the type; BPE is the one with merges
  if (model.contains("type")) {
    ASSIGN_OR_RETURN(model_type,
                     GetString(model, "type", absl::StrCat(std::string(source), ": model")));
  }
  if (model_type != "BPE") {
    return absl::UnimplementedError(absl::StrCat(std::string(source), ": model type '", model_type,
                                                 "' is not supported (only BPE)"));
  }
  ASSIGN_OR_RETURN(tokenizer->model_, BpeModel::FromJson(model, source));
  ASSIGN_OR_RETURN(tokenizer->normalizer_,
                   Normalizer::FromJson(root.value("normalizer", json()), source));
  ASSIGN_OR_RETURN(tokenizer->pre_tokenizer_,
                   PreTokenizer::FromJson(root.value("pre_tokenizer", json()), source));
  ASSIGN_OR_RETURN(tokenizer->decoder_,
                   TokenDecoder::FromJson(root.value("decoder", json()), source));
  ASSIGN_OR_RETURN(std::vector<AddedToken> added,
                   ParseAddedTokens(root.value("added_tokens", json()), source));
  tokenizer->added_ =
      std::make_unique<AddedVocabulary>(std::move(added), tokenizer->normalizer_.get());

  ASSIGN_OR_RETURN(Template from_processor,
                   ParsePostProcessor(root.value("post_processor", json()), source));

  ASSIGN_OR_RETURN(const std::optional<std::string> bos_token,
                   ConfigToken(config, "bos_token", config_source));
  ASSIGN_OR_RETURN(const std::optional<std::string> eos_token,
                   ConfigToken(config, "eos_token", config_source));
  if (bos_token.has_value()) tokenizer->bos_id_ = tokenizer->TokenToId(*bos_token);
  if (eos_token.has_value()) tokenizer->eos_id_ = tokenizer->TokenToId(*eos_token);
  if (!tokenizer->bos_id_.has_value() && from_processor.prefix.size() == 1) {
    tokenizer->bos_id_ = from_processor.prefix[0];
  }
  if (!tokenizer->eos_id_.has_value() && from_processor.suffix.size() == 1) {
    tokenizer->eos_id_ = from_processor.suffix[0];
  }

  // An explicit add_bos_token / add_eos_token decides; otherwise the post-processor does.
  tokenizer->template_ = from_processor;
  if (config.contains("add_bos_token") && !config.at("add_bos_token").is_null()) {
    ASSIGN_OR_RETURN(const bool add_bos, GetBool(config, "add_bos_token", config_source, false));
    tokenizer->template_.prefix.clear();
    if (add_bos && !tokenizer->bos_id_.has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat(config_source, ": add_bos_token is true but bos_token is unknown"));
    }
    if (add_bos) tokenizer->template_.prefix.push_back(*tokenizer->bos_id_);
  }
  if (config.contains("add_eos_token") && !config.at("add_eos_token").is_null()) {
    ASSIGN_OR_RETURN(const bool add_eos, GetBool(config, "add_eos_token", config_source, false));
    tokenizer->template_.suffix.clear();
    if (add_eos && !tokenizer->eos_id_.has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat(config_source, ": add_eos_token is true but eos_token is unknown"));
    }
    if (add_eos) tokenizer->template_.suffix.push_back(*tokenizer->eos_id_);
  }
  ASSIGN_OR_RETURN(tokenizer->chat_template_, ConfigChatTemplate(config, config_source));
  return std::unique_ptr<Tokenizer>(std::move(tokenizer));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromJson(std::string_view tokenizer_json,
                                                               std::string_view config_json,
                                                               std::string_view source) {
  // Every field is type-checked before use; this only guards against a check that was missed.
  try {
    return Build(tokenizer_json, config_json, source);
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(source), ": malformed tokenizer JSON: ", e.what()));
  }
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromDirectory(const std::string& dir) {
  ASSIGN_OR_RETURN(const std::string tokenizer_json, ReadFileToString(dir + "/tokenizer.json"));
  std::string config_json;
  auto config = ReadFileToString(dir + "/tokenizer_config.json");
  if (config.ok()) {
    config_json = std::move(config).value();
  } else if (!absl::IsNotFound(config.status())) {
    return config.status();
  }
  return FromJson(tokenizer_json, config_json, dir + "/tokenizer.json");
}

std::vector<int32_t> Tokenizer::stop_token_ids() const {
  std::vector<int32_t> ids;
  if (std::optional<int32_t> eos = eos_token_id()) ids.push_back(*eos);
  return ids;
}

std::vector<int32_t> EosTokenIds(const std::vector<int64_t>& config_eos_token_ids,
                                 const Tokenizer& tokenizer) {
  std::vector<int32_t> eos;
  for (int64_t id : config_eos_token_ids) eos.push_back(static_cast<int32_t>(id));
  for (int32_t id : tokenizer.stop_token_ids()) {
    if (std::find(eos.begin(), eos.end(), id) == eos.end()) eos.push_back(id);
  }
  return eos;
}

}  // namespace pagoda
