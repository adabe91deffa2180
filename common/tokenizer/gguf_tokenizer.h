// The tokenizer and chat template of a GGUF file (its `tokenizer.ggml.*` and
// `tokenizer.chat_template` metadata), as a Tokenizer.
//
// The GGUF data is validated, then turned into the equivalent Hugging Face tokenizer.json +
// tokenizer_config.json (what transformers' GGUF integration builds in Python) and loaded with
// Tokenizer::FromJson, so the tested tokenizer machinery does the encoding:
// - `gpt2`: byte-level BPE with the file's merges and the pre-tokenizer regexes that
//   `tokenizer.ggml.pre` names, as llama.cpp defines them (default, llama3 / llama-bpe, qwen2,
//   smollm, gpt-2 and their aliases);
// - `llama`: SentencePiece-style BPE with byte fallback; spaces become U+2581 with one prepended
//   (add_space_prefix); merges derived from the scores as transformers does;
// - token types: control (3) and unknown (2) tokens are special tokens, user-defined (4) ones are
//   added tokens that are not special; all are matched in the raw text before the BPE runs;
// - BOS/EOS added as add_bos_token/add_eos_token (or llama.cpp's defaults) say; EOS, EOT and EOM
//   ids (and llama.cpp's end-of-generation tokens such as <|im_end|>) are the stop ids.
// The data is plain views, so it can come from a memory-mapped file or from a test fixture.
//
//   GgufTokenizerData data;  // filled from the file's metadata; views into the mapping
//   data.model = "gpt2"; data.pre = "smollm"; data.tokens = ...; data.merges = ...;
//   ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tok, TokenizerFromGgufData(data, "m.gguf"));
//   std::vector<int32_t> ids = tok->Encode("<|im_start|>user\nHi<|im_end|>\n");
//   ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> t, TokenizerFromGguf(*gguf));  // from the file
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/formats/gguf.h"
#include "common/tokenizer/tokenizer.h"

namespace pagoda {

/// What a GGUF's tokenizer keys hold; every field is untrusted until converted.
struct GgufTokenizerData {
  std::string model;  // tokenizer.ggml.model: "gpt2" | "llama"
  std::string pre;    // tokenizer.ggml.pre ("default" when absent; ignored for "llama")
  std::vector<std::string_view> tokens;  // tokenizer.ggml.tokens, by id
  std::vector<float> scores;             // tokenizer.ggml.scores: [tokens.size()] or empty
  std::vector<int32_t> token_types;      // tokenizer.ggml.token_type: [tokens.size()] or empty
  std::vector<std::string_view> merges;  // tokenizer.ggml.merges: "left right", best first
  std::optional<int32_t> bos, eos, eot, eom, unk, pad;  // tokenizer.ggml.*_token_id
  std::optional<bool> add_bos, add_eos;                 // tokenizer.ggml.add_{bos,eos}_token
  std::optional<bool> add_space_prefix;                 // tokenizer.ggml.add_space_prefix
  std::string chat_template;                            // tokenizer.chat_template
};

/// GGUF token types (tokenizer.ggml.token_type values).
enum class GgufTokenType : int32_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

/// The pre-tokenizer names `gpt2` tokenizers may use, comma-separated (for messages and docs).
std::string SupportedGgufPreTokenizers();

/// Validates `data` and synthesizes the equivalent tokenizer.json + tokenizer_config.json.
/// Errors are InvalidArgument (Unimplemented for an unsupported model or pre-tokenizer) and
/// name `source` and the GGUF key, e.g. "m.gguf: tokenizer.ggml.merges[7] ...".
absl::StatusOr<HfTokenizerFiles> ConvertGgufTokenizer(const GgufTokenizerData& data,
                                                      std::string_view source);

/// ConvertGgufTokenizer, then Tokenizer::FromJson; the result's stop_token_ids() holds EOS, EOT,
/// EOM and the tokens llama.cpp ends generation at (<|eot_id|>, <|im_end|>, <|endoftext|>, ...).
absl::StatusOr<std::unique_ptr<Tokenizer>> TokenizerFromGgufData(const GgufTokenizerData& data,
                                                                 std::string_view source);

/// The tokenizer keys of `file` (views into it: the file must outlive the result). Required:
/// tokenizer.ggml.model and tokenizer.ggml.tokens; the others are optional. A key of the wrong
/// type (or an id beyond int32) is an error naming the file and the key.
absl::StatusOr<GgufTokenizerData> GgufTokenizerDataFromFile(const GgufFile& file);

/// GgufTokenizerDataFromFile, then TokenizerFromGgufData.
absl::StatusOr<std::unique_ptr<Tokenizer>> TokenizerFromGguf(const GgufFile& file);

}  // namespace pagoda
