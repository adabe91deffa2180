// The added tokens of a tokenizer.json ("added_tokens"): special tokens such as <s> or
// <|eot_id|> and user-added words. Input text is cut on them before normalization and
// pre-tokenization (leftmost-longest match, honouring lstrip / rstrip / single_word), so that
// they map straight to their ids.
//
//   AddedVocabulary added(std::move(tokens), normalizer.get());
//   std::vector<AddedVocabulary::Piece> pieces = added.SplitRaw(text);
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "nlohmann/json_fwd.hpp"

namespace pagoda {

class Normalizer;

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool special = false;
  bool lstrip = false;       // the match swallows whitespace on its left
  bool rstrip = false;       // ... and on its right
  bool normalized = false;   // matched in normalized text (content normalized too)
  bool single_word = false;  // matched only when not inside a word
};

/// Parses tokenizer.json's "added_tokens" array (null or absent: none).
absl::StatusOr<std::vector<AddedToken>> ParseAddedTokens(const nlohmann::json& json,
                                                         std::string_view source);

class AddedVocabulary {
 public:
  struct Piece {
    std::string_view text;  // view into the split text
    size_t offset;          // of `text` in the split text
    int32_t id;             // added token id, or -1 for plain text
  };

  /// `normalizer` (may be null) normalizes the content of tokens with normalized=true.
  AddedVocabulary(std::vector<AddedToken> tokens, const Normalizer* normalizer);

  /// Cuts `text` on the tokens with normalized=false (run on the raw input).
  std::vector<Piece> SplitRaw(std::string_view text) const { return Split(raw_, text); }
  /// Cuts `text` on the tokens with normalized=true (run on each normalized segment).
  std::vector<Piece> SplitNormalized(std::string_view text) const {
    return Split(normalized_, text);
  }

  const AddedToken* FindById(int32_t id) const;
  std::optional<int32_t> FindByContent(std::string_view content) const;
  /// Highest added id + 1 (0 when there are none).
  int64_t id_limit() const { return id_limit_; }

 private:
  // A byte trie over token contents.
  struct Trie {
    absl::flat_hash_map<uint64_t, int32_t> edges;  // (node << 8 | byte) -> child node
    std::vector<int32_t> token_at_node{-1};        // index into tokens_, or -1
    bool empty() const { return edges.empty(); }
    void Insert(std::string_view key, int32_t token_index);
  };
  std::vector<Piece> Split(const Trie& trie, std::string_view text) const;

  std::vector<AddedToken> tokens_;
  absl::flat_hash_map<int32_t, size_t> by_id_;
  absl::flat_hash_map<std::string, int32_t> by_content_;
  Trie raw_;
  Trie normalized_;
  int64_t id_limit_ = 0;
};

}  // namespace pagoda
