// ServedModel: what pagoda-router serves, loaded from its model (a directory or a .gguf file,
// common/model_source.h): the config, the tokenizer, the chat template (--chat-template's file,
// else the model's own, else none: then /v1/chat/completions answers 400), the name clients use
// (default: the directory's name, or the file's without .gguf), the
// context length (--max-model-len, lowered to the model's positions; 0: the model's) and the
// EOS ids generation stops at.
//
//   ASSIGN_OR_RETURN(ServedModel model, ServedModel::Load({.model_dir = "models/stories260K"}));
//   Frontend frontend(&replicas, model.tokenizer.get(), {.model_name = model.name, ...});
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/chat_template/chat_template.h"
#include "common/model_config.h"
#include "common/model_source.h"
#include "common/tokenizer/tokenizer.h"

namespace pagoda {

struct ServedModelOptions {
  std::string model_dir;           // a model directory or a .gguf file
  std::string model_name;          // empty: the directory's name
  std::string chat_template_file;  // empty: the model's own template, if any
  int64_t max_model_len = 0;       // 0: the model's positions; more is lowered to them
};

struct ServedModel {
  /// Errors name the file and the problem (a bad --chat-template names the flag).
  static absl::StatusOr<ServedModel> Load(const ServedModelOptions& options);

  std::string name;
  ModelConfig config;
  /// What the model was opened from (its GGUF mapping, for the tensor-parallel check of its
  /// quantized rows); null when the ServedModel was put together by hand.
  std::shared_ptr<const ModelSource> source;
  std::unique_ptr<Tokenizer> tokenizer;
  std::optional<ChatTemplate> chat_template;
  int64_t max_model_len = 0;           // prompt + output tokens of a request, at most
  std::vector<int32_t> eos_token_ids;  // config.json's and the tokenizer's
};

}  // namespace pagoda
