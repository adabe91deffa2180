#include "common/model_source.h"

#include <filesystem>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/formats/gguf_model_config.h"
#include "common/status_macros.h"
#include "common/tokenizer/gguf_tokenizer.h"

namespace pagoda {

bool IsGgufPath(const std::string& path) {
  std::error_code error;
  return absl::EndsWithIgnoreCase(path, ".gguf") && std::filesystem::is_regular_file(path, error);
}

namespace {

// Why `size` ranks would split a quantized row of `gguf` inside a block; empty when they would
// not. Only the row-parallel projections are split by columns.
std::string BlockSplit(const GgufFile& gguf, int64_t size) {
  for (const GgufTensor& tensor : gguf.tensors()) {
    const bool row_parallel =
        absl::EndsWith(absl::string_view(tensor.name.data(), tensor.name.size()),
                       ".attn_output.weight") ||
        absl::EndsWith(absl::string_view(tensor.name.data(), tensor.name.size()),
                       ".ffn_down.weight");
    if (!row_parallel || tensor.shape.size() != 2) continue;
    const int64_t block = Traits(tensor.dtype).block_elements;
    const int64_t cols = tensor.shape[1];
    if (cols % size == 0 && (cols / size) % block == 0) continue;
    return absl::StrCat(std::string(tensor.name), " is ", std::string(DTypeName(tensor.dtype)),
                        " (", block, "-element blocks): tensor parallel size ", size,
                        " would split its rows inside a block");
  }
  return "";
}

}  // namespace

absl::Status CheckTensorParallelSize(const ModelSource& model, int64_t size, bool dummy_weights,
                                     bool expert_parallel) {
  RETURN_IF_ERROR(CheckTensorParallelSize(model.config(), size, expert_parallel));
  if (!model.is_gguf() || dummy_weights) return absl::OkStatus();
  const std::string split = BlockSplit(*model.gguf(), size);
  if (split.empty()) return absl::OkStatus();
  std::vector<std::string> working;
  for (int64_t t = 1; t <= kMaxTensorParallelSize; ++t) {
    if (CheckTensorParallelSize(model.config(), t, expert_parallel).ok() &&
        BlockSplit(*model.gguf(), t).empty()) {
      working.push_back(absl::StrCat(t));
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(
      split, "; tensor parallel sizes that work for this model: ", absl::StrJoin(working, ", ")));
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizerFrom(const std::string& path) {
  if (!IsGgufPath(path)) return Tokenizer::FromDirectory(path);
  ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> gguf, GgufFile::Open(path));
  return TokenizerFromGguf(*gguf);
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
        absl::StrCat(path, " is not a directory (config.json, safetensors) nor a .gguf file"));
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

absl::Status CheckDraftVocabulary(const std::string& target_path, const ModelConfig& target,
                                  const std::string& draft_path, const ModelConfig& draft) {
  if (draft.vocab_size != target.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the draft model ", draft_path, " has a vocabulary of ", draft.vocab_size,
        " tokens but the model has ", target.vocab_size, ": a draft must share the tokenizer"));
  }
  if (target_path.empty()) return absl::OkStatus();
  absl::StatusOr<std::unique_ptr<Tokenizer>> target_tokenizer = LoadTokenizerFrom(target_path);
  absl::StatusOr<std::unique_ptr<Tokenizer>> draft_tokenizer = LoadTokenizerFrom(draft_path);
  // A model without a tokenizer (dummy or token-id-only setups) is compared by size alone.
  if (!target_tokenizer.ok() || !draft_tokenizer.ok()) return absl::OkStatus();
  const Tokenizer& a = **target_tokenizer;
  const Tokenizer& b = **draft_tokenizer;
  if (a.vocab_size() != b.vocab_size()) {
    return absl::InvalidArgumentError(absl::StrCat("the draft model ", draft_path,
                                                   "'s tokenizer has ", b.vocab_size(),
                                                   " tokens but the model's has ", a.vocab_size()));
  }
  for (int64_t id = 0; id < a.vocab_size(); ++id) {
    const std::optional<std::string> x = a.IdToToken(static_cast<int32_t>(id));
    const std::optional<std::string> y = b.IdToToken(static_cast<int32_t>(id));
    if (x != y) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the draft model ", draft_path, " does not share the model's tokenizer: token ", id,
          " is '", y.value_or("<none>"), "' there and '", x.value_or("<none>"), "' here"));
    }
  }
  return absl::OkStatus();
}

}  // namespace pagoda
