// A Hugging Face tokenizer loaded from tokenizer.json + tokenizer_config.json.
//
// Supports the BPE models real LLaMA-family checkpoints ship:
// - byte-level BPE (GPT-2 style: Llama-3, Qwen2, SmolLM2): ByteLevel / Split(regex)
//   pre-tokenizers, ByteLevel decoder;
// - SentencePiece-style BPE with byte fallback (Llama-2, Mistral, TinyStories): Prepend/Replace
//   normalizers or Metaspace pre-tokenizer, ByteFallback/Fuse/Strip/Replace decoders;
// plus NFC/NFKC/Lowercase normalizers, added and special tokens (matched before the model runs),
// and the post-processor / add_bos_token / add_eos_token settings.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tok, Tokenizer::FromDirectory(dir));
//   std::vector<int32_t> ids = tok->Encode("Once upon a time");   // BOS added if configured
//   std::string text = tok->Decode(ids, /*skip_special_tokens=*/true);
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace pagoda {

/// The two files Tokenizer::FromJson reads, as converters (llama2.c, GGUF) synthesize them.
struct HfTokenizerFiles {
  std::string tokenizer_json;
  std::string tokenizer_config_json;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  /// Reads DIR/tokenizer.json and (optional) DIR/tokenizer_config.json.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromDirectory(const std::string& dir);
  /// Same from file contents; `config_json` may be empty. `source` prefixes error messages.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromJson(std::string_view tokenizer_json,
                                                             std::string_view config_json,
                                                             std::string_view source);

  /// Encodes UTF-8 text (invalid UTF-8 is replaced by U+FFFD). With add_special_tokens, BOS/EOS
  /// are added as the tokenizer's post-processor or tokenizer_config.json say.
  virtual std::vector<int32_t> Encode(std::string_view text,
                                      bool add_special_tokens = true) const = 0;

  /// Decodes ids to UTF-8 bytes exactly as the tokenizer's decoder does; may end in an
  /// incomplete UTF-8 sequence when the ids split a character. Unknown ids are skipped.
  virtual std::string Decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const = 0;

  virtual int64_t vocab_size() const = 0;  // highest id + 1, added tokens included
  virtual std::optional<std::string> IdToToken(int32_t id) const = 0;
  virtual std::optional<int32_t> TokenToId(std::string_view token) const = 0;
  virtual bool IsSpecial(int32_t id) const = 0;

  virtual std::optional<int32_t> bos_token_id() const = 0;
  virtual std::optional<int32_t> eos_token_id() const = 0;
  /// The ids that end a generation by themselves: EOS, and where the tokenizer's source names
  /// them, end-of-turn ids such as Llama-3's <|eot_id|> (GGUF's eot/eom ids). Default: EOS.
  virtual std::vector<int32_t> stop_token_ids() const;
  /// tokenizer_config.json's chat_template (Jinja source), empty when absent.
  virtual const std::string& chat_template() const = 0;
};

/// The ids generation stops at: the model config's eos_token_ids, then the tokenizer's stop ids
/// (EOS, EOT, ...) that are not among them.
std::vector<int32_t> EosTokenIds(const std::vector<int64_t>& config_eos_token_ids,
                                 const Tokenizer& tokenizer);

}  // namespace pagoda
