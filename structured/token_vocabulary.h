// A model's vocabulary as byte strings, with a prefix trie over them, built once per vocabulary
// and shared by every grammar compiled against it.
//
// Token ids that decode to nothing and special tokens other than the stop ids (EOS, EOT) are
// never allowed by a grammar; stop ids are allowed exactly where the grammar accepts.
//
//   ASSIGN_OR_RETURN(auto vocab, TokenVocabulary::FromTokenizer(*tokenizer, stop_ids, "smollm2"));
//   for (int32_t node = 1; node < vocab->trie_end(0); node = vocab->trie_end(node)) { ... }
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/tokenizer/tokenizer.h"
#include "structured/grammar.h"

namespace pagoda::structured {

class TokenVocabulary {
 public:
  /// `token_bytes[id]`: what id decodes to; an empty string marks an id never allowed.
  /// `vocabulary_id` names the vocabulary in cache keys (e.g. the model path).
  static absl::StatusOr<std::shared_ptr<const TokenVocabulary>> Create(
      std::vector<std::string> token_bytes, std::vector<int32_t> stop_token_ids,
      std::string vocabulary_id);

  /// Each id's bytes from the tokenizer's decoder (decoded after a fixed anchor token, so a
  /// SentencePiece leading space survives); special ids other than `stop_token_ids` excluded.
  static absl::StatusOr<std::shared_ptr<const TokenVocabulary>> FromTokenizer(
      const Tokenizer& tokenizer, std::vector<int32_t> stop_token_ids, std::string vocabulary_id);

  int32_t size() const { return static_cast<int32_t>(token_bytes_.size()); }
  const std::string& token_bytes(int32_t id) const { return token_bytes_[id]; }
  const std::vector<int32_t>& stop_token_ids() const { return stop_token_ids_; }
  const std::string& id() const { return id_; }
  /// Words of a bitmask over the vocabulary: bit (id % 32) of word id / 32 allows id.
  int32_t bitmask_words() const { return (size() + 31) / 32; }

  // The trie in preorder: node 0 is the root (the empty prefix); a node's children follow it,
  // each child's subtree ending where the next child starts; trie_end(node) is one past the
  // node's subtree. Children are in byte order, so preorder is the tokens' byte order.
  int32_t num_trie_nodes() const { return static_cast<int32_t>(nodes_.size()); }
  uint8_t trie_byte(int32_t node) const { return nodes_[node].byte; }
  int32_t trie_end(int32_t node) const { return nodes_[node].end; }
  /// The ids whose bytes end at `node` (several ids may share their bytes).
  absl::Span<const int32_t> trie_tokens(int32_t node) const {
    return absl::MakeConstSpan(sorted_ids_.data() + nodes_[node].first_token,
                               static_cast<size_t>(nodes_[node].num_tokens));
  }
  /// The ids of the nodes strictly below `node`, in preorder.
  absl::Span<const int32_t> trie_tokens_below(int32_t node) const {
    const int32_t end = nodes_[node].end;
    const int32_t last =
        end < num_trie_nodes() ? nodes_[end].first_token : static_cast<int32_t>(sorted_ids_.size());
    const int32_t first = nodes_[node].first_token + nodes_[node].num_tokens;
    return absl::MakeConstSpan(sorted_ids_.data() + first, static_cast<size_t>(last - first));
  }
  /// The bytes of the nodes strictly below `node` (what a walk of its subtree reads).
  const ByteSet& trie_bytes_below(int32_t node) const { return bytes_below_[node]; }

 private:
  struct Node {
    uint8_t byte = 0;
    int32_t end = 0;
    int32_t first_token = 0;  // into sorted_ids_
    int32_t num_tokens = 0;
  };
  TokenVocabulary() = default;

  std::vector<std::string> token_bytes_;
  std::vector<int32_t> stop_token_ids_;
  std::string id_;
  std::vector<Node> nodes_;
  std::vector<int32_t> sorted_ids_;
  std::vector<ByteSet> bytes_below_;  // [node]
};

}  // namespace pagoda::structured
