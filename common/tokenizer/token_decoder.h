// Tokenizer decoders (tokenizer.json "decoder"): ByteLevel, ByteFallback, Fuse, Replace, Strip,
// Metaspace, BPEDecoder and Sequence. A decoder rewrites the list of token strings; the decoded
// text is their concatenation.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<TokenDecoder> d, TokenDecoder::FromJson(json, source));
//   std::vector<std::string> tokens = {"Hello", "Ġworld"};
//   d->Decode(tokens);   // {"Hello", " world"}
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json_fwd.hpp"

namespace pagoda {

class TokenDecoder {
 public:
  virtual ~TokenDecoder() = default;

  /// Rewrites the token strings in place (tokenizers' decode_chain). Byte tokens are turned into
  /// raw bytes: the result may hold incomplete UTF-8 where the ids split a character.
  virtual void Decode(std::vector<std::string>& tokens) const = 0;

  /// Builds a decoder from its JSON object; null JSON gives nullptr (tokens joined by spaces).
  static absl::StatusOr<std::unique_ptr<TokenDecoder>> FromJson(const nlohmann::json& json,
                                                                std::string_view source);
};

}  // namespace pagoda
