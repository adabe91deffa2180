#include "common/model_source.h"

#include <filesystem>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/formats/gguf_model_config.h"
#include "common/status_macros.h"
#include "common/tokenizer/gguf_tokenizer.h"

namespace pagoda {

bool IsGgufPath(const std::string& path) {
  std::error_code error;
  return absl::EndsWithIgnoreCase(path, ".gguf") && std::filesystem::is_regular_file(path, error);
}

absl::StatusOr<ModelSource> ModelSource::Open(const std::string& path) {
  if (path.empty()) return absl::InvalidArgumentError("no model given (a directory or a .gguf)");
  if (IsGgufPath(path)) {
    ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> gguf, GgufFile::Open(path));
    ASSIGN_OR_RETURN(ModelConfig config, ModelConfigFromGguf(*gguf));
    return ModelSource(path, std::move(config), std::shared_ptr<const GgufFile>(std::move(gguf)));
  }
  std::error_code error;
  if (!std::filesystem::is_directory(path, error)) {
    return absl::NotFoundError(
        absl::StrCat(path, ": not a model directory (config.json, safetensors) or a .gguf file"));
  }
  ASSIGN_OR_RETURN(ModelConfig config, ModelConfig::FromDirectory(path));
  return ModelSource(path, std::move(config), nullptr);
}

std::string ModelSource::DefaultName() const {
  std::filesystem::path p = std::filesystem::path(path_).lexically_normal();
  if (!p.has_filename()) p = p.parent_path();  // "models/stories260K/"
  if (is_gguf()) return p.stem().string();
  return p.filename().string();
}

absl::StatusOr<std::unique_ptr<Tokenizer>> ModelSource::LoadTokenizer() const {
  if (is_gguf()) return TokenizerFromGguf(*gguf_);
  return Tokenizer::FromDirectory(path_);
}

absl::StatusOr<ChatTemplate> ModelSource::LoadChatTemplate() const {
  if (!is_gguf()) return ChatTemplate::FromModelDirectory(path_);
  const absl::StatusOr<std::string_view> source = gguf_->GetString("tokenizer.chat_template");
  if (!source.ok()) return source.status();  // NotFound when absent
  absl::StatusOr<ChatTemplate> parsed = ChatTemplate::Parse(std::string(*source));
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": tokenizer.chat_template: ", parsed.status().message()));
  }
  return parsed;
}

}  // namespace pagoda
