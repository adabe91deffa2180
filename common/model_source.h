// ModelSource: "a model" as every command and the router open it — a Hugging Face directory
// (config.json, safetensors, tokenizer.json, tokenizer_config.json) or a single GGUF file (its
// metadata holds the config, the tokenizer and the chat template; its tensors the weights). Open
// reads the config (and, for a GGUF, maps and validates the file once); the tokenizer and chat
// template are loaded on demand, so a worker that needs only the config and weights never builds a
// tokenizer. The weights are loaded by the worker (worker/model_weights.h), which reuses the open
// GGUF mapping.
//
//   ASSIGN_OR_RETURN(ModelSource model, ModelSource::Open("models/SmolLM2.Q4_1.gguf"));
//   const ModelConfig& config = model.config();
//   ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, model.LoadTokenizer());
//   absl::StatusOr<ChatTemplate> tmpl = model.LoadChatTemplate();  // NotFound: it has none
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/chat_template/chat_template.h"
#include "common/formats/gguf.h"
#include "common/model_config.h"
#include "common/tokenizer/tokenizer.h"

namespace pagoda {

class ModelSource {
 public:
  /// Opens a directory or a .gguf file (a regular file whose name ends in .gguf). Errors name the
  /// path and the problem.
  static absl::StatusOr<ModelSource> Open(const std::string& path);

  const std::string& path() const { return path_; }
  bool is_gguf() const { return gguf_ != nullptr; }
  const ModelConfig& config() const { return config_; }
  /// The mapped GGUF file; null for a directory.
  const std::shared_ptr<const GgufFile>& gguf() const { return gguf_; }
  /// The name clients use by default: the directory's name, or the file's name without .gguf.
  std::string DefaultName() const;

  absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer() const;
  /// The model's own chat template (tokenizer_config.json's, or GGUF's tokenizer.chat_template);
  /// NotFound when it has none.
  absl::StatusOr<ChatTemplate> LoadChatTemplate() const;

 private:
  ModelSource(std::string path, ModelConfig config, std::shared_ptr<const GgufFile> gguf)
      : path_(std::move(path)), config_(std::move(config)), gguf_(std::move(gguf)) {}

  std::string path_;
  ModelConfig config_;
  std::shared_ptr<const GgufFile> gguf_;
};

/// True when `path` names a GGUF file (a regular file ending in .gguf) rather than a directory.
bool IsGgufPath(const std::string& path);

/// CheckTensorParallelSize(model.config(), size) (common/model_config.h), and for a GGUF model
/// whose own weights are loaded (not dummy ones) also that no quantized row would be split inside
/// a block: the row-parallel projections (attn_output, ffn_down), whose columns the ranks split,
/// must have a whole number of blocks per rank. The error names the tensor, its type and the
/// sizes that work for this file, e.g. "...ffn_down.weight is q4_K (256-element blocks): tensor
/// parallel size 4 would split its rows inside a block; tensor parallel sizes that work: 1, 2".
/// `expert_parallel`: the config is checked for whole experts per rank.
absl::Status CheckTensorParallelSize(const ModelSource& model, int64_t size,
                                     bool dummy_weights = false, bool expert_parallel = false);

/// The tokenizer of a tokenizer directory (tokenizer.json, tokenizer_config.json; no config.json
/// needed) or of a .gguf file.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizerFrom(const std::string& path);

/// Speculative decoding: InvalidArgument naming the difference unless the draft model
/// (`draft_path`, `draft`) can propose for the target (`target_path`, `target`): the same
/// vocabulary size and, where both carry a tokenizer, the same token for every id. An empty
/// `target_path` compares the sizes alone.
absl::Status CheckDraftVocabulary(const std::string& target_path, const ModelConfig& target,
                                  const std::string& draft_path, const ModelConfig& draft);

}  // namespace pagoda
