// IncrementalDetokenizer: turns generated token ids into streamed text, one delta per call.
//
// The deltas concatenate to Decode(prompt + output) with Decode(prompt) removed, which keeps
// context-dependent decoding right (SentencePiece's leading-space strip, byte-fallback tokens that
// split a character, BPE end-of-word suffixes) without re-decoding the whole sequence: each call
// decodes only a short window, as vLLM's prefix_offset / read_offset scheme does. The window is
// the last token that decodes (skipped special tokens and unknown ids do not) plus the new ids,
// so decoders that treat the first token specially (Strip, Metaspace) see the same first token in
// the prefix and the full decode; a call costs O(new ids), not O(sequence). Raw bytes of a
// character that is not complete yet are held back, so every delta is valid UTF-8; bytes that can
// never become valid UTF-8 come out as U+FFFD (as Python's errors="replace").
//
//   IncrementalDetokenizer detok(*tokenizer, prompt_ids, params.skip_special_tokens);
//   for (int32_t id : sampled) stream(detok.Append(id));
//   stream(detok.Finish());   // an incomplete last character becomes U+FFFD, as HF decode does
//
// Relies on Tokenizer::Decode being prefix-stable (Decode(a + b) begins with Decode(a) when `a`
// holds a decoded token), which holds for the decoders common/token_decoder.h implements.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/tokenizer/tokenizer.h"

namespace pagoda {

class IncrementalDetokenizer {
 public:
  /// `tokenizer` must outlive this object. The prompt ids give the decoding context only; their
  /// text is never returned.
  IncrementalDetokenizer(const Tokenizer& tokenizer, std::span<const int32_t> prompt_token_ids,
                         bool skip_special_tokens = true);

  /// Appends generated ids and returns the text they complete (valid UTF-8, possibly empty).
  std::string Append(std::span<const int32_t> token_ids);
  std::string Append(int32_t token_id) { return Append(std::span<const int32_t>(&token_id, 1)); }

  /// Ends the stream: returns the bytes still held for an incomplete character as U+FFFD (empty
  /// when none). Append may be called again afterwards; it starts from a clean byte state.
  std::string Finish();

  int64_t num_output_tokens() const { return num_output_tokens_; }
  /// Bytes of an incomplete UTF-8 character waiting for their continuation (at most 3).
  size_t num_held_bytes() const { return held_bytes_.size(); }
  /// Context tokens decoded with each call's new ids (vLLM's read_offset - prefix_offset): 0 or 1.
  size_t prefix_window_size() const { return window_.size(); }

 private:
  // True when Decode() keeps `id` (not a skipped special token, not unknown).
  bool Decodes(int32_t id) const;

  const Tokenizer& tokenizer_;
  const bool skip_special_tokens_;
  // Between calls: the last token of prompt + output that Decodes(), if any.
  std::vector<int32_t> window_;
  // Decode(window_) as of the last call (vLLM's prefix text).
  std::string prefix_text_;
  // Decoded bytes not returned yet: a proper prefix of a UTF-8 character.
  std::string held_bytes_;
  int64_t num_output_tokens_ = 0;
};

}  // namespace pagoda
