// PromptText: benchmark prompts made of real English text that the model's tokenizer turns into
// (about) a wanted number of tokens. The text is a built-in corpus of short stories; the
// tokenizer encodes it once into a circular stream of token ids, and a prompt is a window of
// that stream starting at a given offset, decoded to text and re-encoded until the count fits
// (as vLLM's random dataset does with its token ids). Prompts at different offsets share no
// leading block, so the server's prefix cache does not flatter the figures.
//
//   ASSIGN_OR_RETURN(PromptText text, PromptText::Create(tokenizer.get()));
//   PromptText::Prompt p = text.Make(/*offset=*/rng(), /*num_tokens=*/200);
//   // p.text for an HTTP prompt, p.token_ids (BOS included) for a gRPC one
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tokenizer/tokenizer.h"

namespace pagoda {

class PromptText {
 public:
  struct Prompt {
    std::string text;
    std::vector<int32_t> token_ids;  // Encode(text) with special tokens: what a server makes of it
  };

  /// Tokenizes the corpus; `tokenizer` is borrowed and must outlive this object.
  static absl::StatusOr<PromptText> Create(const Tokenizer* tokenizer);

  /// A prompt of about `num_tokens` tokens (special tokens included) taken from the corpus at
  /// token `offset` (modulo the corpus length). Never empty text: at least one corpus token.
  Prompt Make(uint64_t offset, int64_t num_tokens) const;
  /// A continuation: about `num_tokens` tokens of text, encoded without special tokens, to be
  /// appended to another prompt (the prefix dataset's unique suffixes).
  Prompt MakeSuffix(uint64_t offset, int64_t num_tokens) const;

  /// `text` as a server encodes a prompt (special tokens added).
  std::vector<int32_t> Encode(std::string_view text) const { return tokenizer_->Encode(text); }

  int64_t corpus_tokens() const { return static_cast<int64_t>(corpus_ids_.size()); }
  /// The built-in corpus (ASCII).
  static const std::string& Corpus();

 private:
  PromptText(const Tokenizer* tokenizer, std::vector<int32_t> corpus_ids, int64_t num_special)
      : tokenizer_(tokenizer), corpus_ids_(std::move(corpus_ids)), num_special_(num_special) {}

  Prompt MakeWindow(uint64_t offset, int64_t num_tokens, bool add_special_tokens) const;

  const Tokenizer* tokenizer_;
  std::vector<int32_t> corpus_ids_;
  int64_t num_special_ = 0;  // tokens Encode adds to any text (BOS, EOS)
};

}  // namespace pagoda
