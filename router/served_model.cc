#include "router/served_model.h"

#include <algorithm>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace pagoda {
namespace {

// "models/stories260K" and "models/stories260K/" are both "stories260K".
std::string DirectoryName(const std::string& dir) {
  std::filesystem::path path = std::filesystem::path(dir).lexically_normal();
  if (!path.has_filename()) path = path.parent_path();
  return path.filename().string();
}

absl::StatusOr<std::optional<ChatTemplate>> LoadChatTemplate(const std::string& file,
                                                             const std::string& model_dir) {
  if (!file.empty()) {
    absl::StatusOr<std::string> source = ReadFileToString(file);
    if (!source.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--chat-template: cannot read ", file, ": ", source.status().message()));
    }
    absl::StatusOr<ChatTemplate> parsed = ChatTemplate::Parse(std::move(*source));
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--chat-template: ", file, ": ", parsed.status().message()));
    }
    return std::optional<ChatTemplate>(std::move(*parsed));
  }
  absl::StatusOr<ChatTemplate> loaded = ChatTemplate::FromModelDirectory(model_dir);
  if (loaded.ok()) return std::optional<ChatTemplate>(std::move(*loaded));
  if (absl::IsNotFound(loaded.status())) return std::optional<ChatTemplate>();
  return loaded.status();
}

}  // namespace

absl::StatusOr<ServedModel> ServedModel::Load(const ServedModelOptions& options) {
  ServedModel model;
  ASSIGN_OR_RETURN(model.config, ModelConfig::FromDirectory(options.model_dir));
  ASSIGN_OR_RETURN(model.tokenizer, Tokenizer::FromDirectory(options.model_dir));
  ASSIGN_OR_RETURN(model.chat_template,
                   LoadChatTemplate(options.chat_template_file, options.model_dir));
  model.name = options.model_name.empty() ? DirectoryName(options.model_dir) : options.model_name;
  const int64_t positions = model.config.max_position_embeddings;
  model.max_model_len =
      options.max_model_len > 0 ? std::min(options.max_model_len, positions) : positions;
  model.eos_token_ids = EosTokenIds(model.config.eos_token_ids, *model.tokenizer);
  return model;
}

}  // namespace pagoda
