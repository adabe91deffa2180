#include "router/served_model.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/model_source.h"
#include "common/status_macros.h"

namespace pagoda {
namespace {

absl::StatusOr<std::optional<ChatTemplate>> LoadChatTemplate(const std::string& file,
                                                             const ModelSource& model) {
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
  absl::StatusOr<ChatTemplate> loaded = model.LoadChatTemplate();
  if (loaded.ok()) return std::optional<ChatTemplate>(std::move(*loaded));
  if (absl::IsNotFound(loaded.status())) return std::optional<ChatTemplate>();
  return loaded.status();
}

}  // namespace

absl::StatusOr<ServedModel> ServedModel::Load(const ServedModelOptions& options) {
  ServedModel model;
  ASSIGN_OR_RETURN(ModelSource source, ModelSource::Open(options.model_dir));
  model.source = std::make_shared<const ModelSource>(std::move(source));
  model.config = model.source->config();
  ASSIGN_OR_RETURN(model.tokenizer, model.source->LoadTokenizer());
  ASSIGN_OR_RETURN(model.chat_template,
                   LoadChatTemplate(options.chat_template_file, *model.source));
  model.name = options.model_name.empty() ? model.source->DefaultName() : options.model_name;
  const int64_t positions = model.config.max_position_embeddings;
  model.max_model_len =
      options.max_model_len > 0 ? std::min(options.max_model_len, positions) : positions;
  model.eos_token_ids = EosTokenIds(model.config.eos_token_ids, *model.tokenizer);
  return model;
}

}  // namespace pagoda
