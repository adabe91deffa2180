#include "structured/token_vocabulary.h"

#include <algorithm>
#include <memory>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace pagoda::structured {

absl::StatusOr<std::shared_ptr<const TokenVocabulary>> TokenVocabulary::Create(
    std::vector<std::string> token_bytes, std::vector<int32_t> stop_token_ids,
    std::string vocabulary_id) {
  const int32_t size = static_cast<int32_t>(token_bytes.size());
  if (size == 0) return absl::InvalidArgumentError("token vocabulary: no tokens");
  for (int32_t id : stop_token_ids) {
    if (id < 0 || id >= size) {
      return absl::InvalidArgumentError(
          absl::StrCat("token vocabulary: stop token id ", id, " outside [0, ", size, ")"));
    }
    token_bytes[id].clear();  // a stop id is never a string of the grammar
  }
  auto vocab = std::shared_ptr<TokenVocabulary>(new TokenVocabulary());
  vocab->stop_token_ids_ = std::move(stop_token_ids);
  vocab->id_ = std::move(vocabulary_id);
  std::vector<int32_t> ids;
  for (int32_t id = 0; id < size; ++id) {
    if (!token_bytes[id].empty()) ids.push_back(id);
  }
  std::stable_sort(ids.begin(), ids.end(),
                   [&](int32_t a, int32_t b) { return token_bytes[a] < token_bytes[b]; });
  // Preorder from the sorted strings: a stack of the current path's nodes.
  std::vector<Node>& nodes = vocab->nodes_;
  nodes.push_back({});
  std::vector<int32_t> path = {0};
  std::string_view previous;
  for (int32_t id : ids) {
    const std::string& bytes = token_bytes[id];
    size_t common = 0;
    while (common < previous.size() && common < bytes.size() && previous[common] == bytes[common]) {
      ++common;
    }
    while (path.size() > common + 1) {
      nodes[path.back()].end = static_cast<int32_t>(nodes.size());
      path.pop_back();
    }
    for (size_t i = common; i < bytes.size(); ++i) {
      path.push_back(static_cast<int32_t>(nodes.size()));
      nodes.push_back({.byte = static_cast<uint8_t>(bytes[i]),
                       .first_token = static_cast<int32_t>(vocab->sorted_ids_.size())});
    }
    Node& node = nodes[path.back()];
    if (node.num_tokens == 0) node.first_token = static_cast<int32_t>(vocab->sorted_ids_.size());
    ++node.num_tokens;
    vocab->sorted_ids_.push_back(id);
    previous = bytes;
  }
  for (int32_t node : path) nodes[node].end = static_cast<int32_t>(nodes.size());
  vocab->bytes_below_.resize(nodes.size());
  for (int32_t node = static_cast<int32_t>(nodes.size()); node-- > 0;) {
    for (int32_t child = node + 1; child < nodes[node].end; child = nodes[child].end) {
      vocab->bytes_below_[node].Add(nodes[child].byte);
      vocab->bytes_below_[node].UnionWith(vocab->bytes_below_[child]);
    }
  }
  vocab->token_bytes_ = std::move(token_bytes);
  return std::shared_ptr<const TokenVocabulary>(std::move(vocab));
}

absl::StatusOr<std::shared_ptr<const TokenVocabulary>> TokenVocabulary::FromTokenizer(
    const Tokenizer& tokenizer, std::vector<int32_t> stop_token_ids, std::string vocabulary_id) {
  const int32_t size = static_cast<int32_t>(tokenizer.vocab_size());
  const std::vector<int32_t> anchor_ids = tokenizer.Encode("a", /*add_special_tokens=*/false);
  const std::optional<int32_t> anchor =
      anchor_ids.size() == 1 ? std::optional<int32_t>(anchor_ids[0]) : std::nullopt;
  const std::string anchor_text =
      anchor ? tokenizer.Decode({*anchor}, /*skip_special_tokens=*/false) : "";
  std::vector<std::string> token_bytes(size);
  for (int32_t id = 0; id < size; ++id) {
    if (tokenizer.IsSpecial(id) || !tokenizer.IdToToken(id).has_value()) continue;
    if (anchor) {
      std::string both = tokenizer.Decode({*anchor, id}, /*skip_special_tokens=*/false);
      if (both.compare(0, anchor_text.size(), anchor_text) == 0) {
        token_bytes[id] = both.substr(anchor_text.size());
        continue;
      }
    }
    token_bytes[id] = tokenizer.Decode({id}, /*skip_special_tokens=*/false);
  }
  return Create(std::move(token_bytes), std::move(stop_token_ids), std::move(vocabulary_id));
}

}  // namespace pagoda::structured
