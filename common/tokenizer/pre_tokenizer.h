// Tokenizer pre-tokenizers (tokenizer.json "pre_tokenizer"): ByteLevel, Split (regex or string,
// any split behaviour, invert), Digits, Metaspace, Whitespace, WhitespaceSplit, Punctuation and
// Sequence. They cut each normalized segment into the words the BPE model encodes separately.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<PreTokenizer> p, PreTokenizer::FromJson(json, source));
//   std::vector<PreToken> words = p->PreTokenize({PreToken{text, /*at_start=*/true}});
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json_fwd.hpp"

namespace pagoda {

struct PreToken {
  std::string text;
  // Starts at offset 0 of the original input (Metaspace's prepend_scheme "first" needs it).
  bool at_start = false;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;

  /// Splits (and for ByteLevel, maps) the pieces; empty pieces are dropped.
  virtual std::vector<PreToken> PreTokenize(std::vector<PreToken> pieces) const = 0;

  /// Builds a pre-tokenizer from its JSON object; null JSON gives nullptr (the whole segment is
  /// one word). `source` prefixes error messages.
  static absl::StatusOr<std::unique_ptr<PreTokenizer>> FromJson(const nlohmann::json& json,
                                                                std::string_view source);
};

}  // namespace pagoda
