#include "common/tokenizer/incremental_detokenizer.h"

#include <string_view>
#include <utility>

#include "common/unicode_util.h"

namespace pagoda {
namespace {

// Length of the trailing bytes of `bytes` that form a proper prefix of some valid UTF-8
// character (a lead byte and fewer continuations than it needs, within the allowed ranges), so
// that more bytes may still complete it; 0 when the bytes end on a character boundary or in bytes
// that can never become valid.
size_t IncompleteUtf8TailLength(std::string_view bytes) {
  const size_t n = bytes.size();
  for (size_t k = 1; k <= 3 && k <= n; ++k) {
    const auto lead = static_cast<unsigned char>(bytes[n - k]);
    if ((lead & 0xC0) == 0x80) continue;  // a continuation byte: the lead is further back
    size_t length = 0;
    unsigned char second_min = 0x80;
    unsigned char second_max = 0xBF;
    if (lead >= 0xC2 && lead <= 0xDF) {
      length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      length = 3;
      if (lead == 0xE0) second_min = 0xA0;  // overlong
      if (lead == 0xED) second_max = 0x9F;  // surrogates
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      length = 4;
      if (lead == 0xF0) second_min = 0x90;  // overlong
      if (lead == 0xF4) second_max = 0x8F;  // above U+10FFFF
    } else {
      return 0;  // ASCII or a byte that never starts a character
    }
    if (k >= length) return 0;  // complete, or followed by stray continuations
    if (k >= 2) {
      const auto second = static_cast<unsigned char>(bytes[n - k + 1]);
      if (second < second_min || second > second_max) return 0;
    }
    return k;
  }
  return 0;
}

}  // namespace

IncrementalDetokenizer::IncrementalDetokenizer(const Tokenizer& tokenizer,
                                               std::span<const int32_t> prompt_token_ids,
                                               bool skip_special_tokens)
    : tokenizer_(tokenizer), skip_special_tokens_(skip_special_tokens) {
  // The prompt's last decoding token is all the context the first delta needs.
  for (size_t i = prompt_token_ids.size(); i > 0; --i) {
    if (Decodes(prompt_token_ids[i - 1])) {
      window_.push_back(prompt_token_ids[i - 1]);
      prefix_text_ = tokenizer_.Decode(window_, skip_special_tokens_);
      break;
    }
  }
}

bool IncrementalDetokenizer::Decodes(int32_t id) const {
  if (skip_special_tokens_ && tokenizer_.IsSpecial(id)) return false;
  return tokenizer_.IdToToken(id).has_value();
}

std::string IncrementalDetokenizer::Append(std::span<const int32_t> token_ids) {
  num_output_tokens_ += static_cast<int64_t>(token_ids.size());
  // Decode() drops skipped and unknown ids before its decoder runs, so leaving them out of the
  // window changes no text and keeps the window short when e.g. EOS repeats under ignore_eos.
  const size_t context_size = window_.size();
  for (int32_t id : token_ids) {
    if (Decodes(id)) window_.push_back(id);
  }
  if (window_.size() == context_size) return "";

  std::string full_text = tokenizer_.Decode(window_, skip_special_tokens_);
  // Decoding is prefix-stable, so the new tokens' text is what follows the prefix text. (Were it
  // ever shorter, nothing is emitted: text already streamed cannot be taken back.)
  if (full_text.size() > prefix_text_.size()) {
    held_bytes_.append(full_text, prefix_text_.size(), std::string::npos);
  }
  // vLLM's prefix_offset = read_offset step, with a window of one token.
  if (window_.size() == 1) {
    prefix_text_ = std::move(full_text);
  } else {
    window_.erase(window_.begin(), window_.end() - 1);
    prefix_text_ = tokenizer_.Decode(window_, skip_special_tokens_);
  }

  const size_t ready = held_bytes_.size() - IncompleteUtf8TailLength(held_bytes_);
  std::string delta = SanitizeUtf8(std::string_view(held_bytes_).substr(0, ready));
  held_bytes_.erase(0, ready);
  return delta;
}

std::string IncrementalDetokenizer::Finish() {
  std::string tail = SanitizeUtf8(held_bytes_);
  held_bytes_.clear();
  return tail;
}

}  // namespace pagoda
