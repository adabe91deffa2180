// The BPE model of a Hugging Face tokenizer.json: vocabulary, ranked merges, byte fallback,
// unknown token, continuing-subword prefix / end-of-word suffix and ignore_merges. Encodes one
// pre-tokenized word by repeatedly merging its lowest-ranked adjacent pair (leftmost on ties),
// exactly as tokenizers' BPE does.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<BpeModel> bpe, BpeModel::FromJson(json["model"], source));
//   std::vector<int32_t> ids;
//   bpe->Tokenize("Ġhello", ids);
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "nlohmann/json_fwd.hpp"

namespace pagoda {

class BpeModel {
 public:
  /// Builds the model from tokenizer.json's "model" object (type "BPE"); merges may be "a b"
  /// strings or [a, b] pairs. Errors name `source` and the offending field or merge.
  static absl::StatusOr<std::unique_ptr<BpeModel>> FromJson(const nlohmann::json& json,
                                                            std::string_view source);

  /// Appends the ids of one word (valid UTF-8) to `ids`. Thread-safe.
  void Tokenize(std::string_view word, std::vector<int32_t>& ids) const;

  std::optional<int32_t> TokenToId(std::string_view token) const;
  /// The token of `id`, or null when the vocabulary has no such id.
  const std::string* IdToToken(int32_t id) const;
  /// Highest id + 1.
  int64_t vocab_size() const { return static_cast<int64_t>(id_to_token_.size()); }

 private:
  struct Merge {
    int32_t rank;
    int32_t new_id;
  };
  static uint64_t PairKey(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) |
           static_cast<uint32_t>(right);
  }

  BpeModel() = default;
  // Splits the word into initial symbols (characters, byte fallback, unknown token).
  std::vector<int32_t> InitialSymbols(std::string_view word) const;
  void MergeSymbols(std::vector<int32_t>& symbols) const;

  absl::flat_hash_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_id_;
  absl::flat_hash_map<uint64_t, Merge> merges_;
  std::optional<int32_t> unk_id_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  std::string continuing_subword_prefix_;
  std::string end_of_word_suffix_;
  std::array<int32_t, 256> byte_ids_{};  // "<0xNN>" ids, -1 when absent

  // Encoded words, bounded; pre-tokenized text repeats words a lot.
  mutable std::mutex cache_mutex_;
  mutable absl::flat_hash_map<std::string, std::vector<int32_t>> cache_
      ABSL_GUARDED_BY(cache_mutex_);
};

}  // namespace pagoda
