// Tokenizer normalizers (tokenizer.json "normalizer"): NFC/NFD/NFKC/NFKD, Lowercase, Strip,
// StripAccents, Prepend, Replace (string or regex) and Sequence. They rewrite the text of each
// segment between added tokens before pre-tokenization.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<Normalizer> n, Normalizer::FromJson(json["normalizer"], src));
//   std::string normalized = n ? n->Normalize(text) : std::string(text);
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "nlohmann/json_fwd.hpp"

namespace pagoda {

class Normalizer {
 public:
  virtual ~Normalizer() = default;

  /// Rewrites valid UTF-8 text.
  virtual std::string Normalize(std::string_view text) const = 0;

  /// Builds a normalizer from its JSON object; null JSON gives nullptr (no normalization).
  /// `source` prefixes error messages.
  static absl::StatusOr<std::unique_ptr<Normalizer>> FromJson(const nlohmann::json& json,
                                                              std::string_view source);
};

}  // namespace pagoda
