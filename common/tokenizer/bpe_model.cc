#include "common/tokenizer/bpe_model.h"

#include <queue>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "common/tokenizer/tokenizer_json_util.h"
#include "common/unicode_util.h"

namespace pagoda {
namespace {

constexpr int64_t kMaxVocabId = int64_t{1} << 24;
constexpr size_t kMaxCachedWordBytes = 128;
constexpr size_t kMaxCacheEntries = 1 << 16;

// The packaged abseil's string_view is not std::string_view; its hash maps look up by its own.
absl::string_view AsAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// Splits one merges entry into its two tokens.
absl::StatusOr<std::pair<std::string, std::string>> ParseMerge(const nlohmann::json& merge,
                                                               size_t index,
                                                               std::string_view where) {
  if (merge.is_string()) {
    const std::string& text = merge.get_ref<const std::string&>();
    const size_t space = text.find(' ');
    if (space != std::string::npos && text.find(' ', space + 1) == std::string::npos) {
      return std::make_pair(text.substr(0, space), text.substr(space + 1));
    }
  } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() &&
             merge[1].is_string()) {
    return std::make_pair(merge[0].get<std::string>(), merge[1].get<std::string>());
  }
  return absl::InvalidArgumentError(absl::StrCat(std::string(where), ": merges[", index,
                                                 "] must be \"a b\" or [\"a\", \"b\"], got ",
                                                 merge.dump()));
}

}  // namespace

absl::StatusOr<std::unique_ptr<BpeModel>> BpeModel::FromJson(const nlohmann::json& json,
                                                             std::string_view source) {
  const std::string where = absl::StrCat(std::string(source), ": model");
  if (!json.is_object()) return absl::InvalidArgumentError(where + " must be an object");
  std::unique_ptr<BpeModel> model(new BpeModel());

  if (!json.contains("vocab") || !json.at("vocab").is_object()) {
    return JsonFieldError(where, "vocab", "must be an object of token -> id");
  }
  int64_t max_id = -1;
  for (const auto& [token, id_json] : json.at("vocab").items()) {
    if (!id_json.is_number_integer() || id_json.get<int64_t>() < 0 ||
        id_json.get<int64_t>() >= kMaxVocabId) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": vocab entry '", token, "' has invalid id ", id_json.dump()));
    }
    const int64_t id = id_json.get<int64_t>();
    model->vocab_[token] = static_cast<int32_t>(id);
    max_id = std::max(max_id, id);
  }
  model->id_to_token_.resize(static_cast<size_t>(max_id + 1));
  model->has_id_.assign(static_cast<size_t>(max_id + 1), false);
  for (const auto& [token, id] : model->vocab_) {
    model->id_to_token_[id] = token;
    model->has_id_[id] = true;
  }

  ASSIGN_OR_RETURN(const std::optional<std::string> unk_token,
                   GetOptionalString(json, "unk_token", where));
  if (unk_token.has_value()) model->unk_id_ = model->TokenToId(*unk_token);
  ASSIGN_OR_RETURN(model->fuse_unk_, GetBool(json, "fuse_unk", where, false));
  ASSIGN_OR_RETURN(model->byte_fallback_, GetBool(json, "byte_fallback", where, false));
  ASSIGN_OR_RETURN(model->ignore_merges_, GetBool(json, "ignore_merges", where, false));
  ASSIGN_OR_RETURN(const std::optional<std::string> prefix,
                   GetOptionalString(json, "continuing_subword_prefix", where));
  model->continuing_subword_prefix_ = prefix.value_or("");
  ASSIGN_OR_RETURN(const std::optional<std::string> suffix,
                   GetOptionalString(json, "end_of_word_suffix", where));
  model->end_of_word_suffix_ = suffix.value_or("");

  for (int b = 0; b < 256; ++b) {
    const std::optional<int32_t> id = model->TokenToId(absl::StrFormat("<0x%02X>", b));
    model->byte_ids_[b] = id.value_or(-1);
  }

  if (!json.contains("merges") || !json.at("merges").is_array()) {
    return JsonFieldError(where, "merges", "must be an array");
  }
  const nlohmann::json& merges = json.at("merges");
  model->merges_.reserve(merges.size());
  const size_t prefix_size = model->continuing_subword_prefix_.size();
  for (size_t i = 0; i < merges.size(); ++i) {
    ASSIGN_OR_RETURN(const auto pair, ParseMerge(merges[i], i, where));
    const std::optional<int32_t> left = model->TokenToId(pair.first);
    const std::optional<int32_t> right = model->TokenToId(pair.second);
    for (const std::string* part : {&pair.first, &pair.second}) {
      if (!model->TokenToId(*part).has_value()) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": merges[", i, "] uses token '",
                                                       *part, "' that is not in the vocab"));
      }
    }
    // With a continuing-subword prefix the right token carries it and the merged token does not
    // repeat it ("un" + "##able" -> "unable").
    std::string merged = pair.first;
    const bool right_has_prefix =
        prefix_size > 0 &&
        pair.second.compare(0, prefix_size, model->continuing_subword_prefix_) == 0;
    merged.append(pair.second, right_has_prefix ? prefix_size : 0);
    const std::optional<int32_t> merged_id = model->TokenToId(merged);
    if (!merged_id.has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": merges[", i, "] makes '", merged, "' that is not in the vocab"));
    }
    model->merges_[PairKey(*left, *right)] = Merge{static_cast<int32_t>(i), *merged_id};
  }
  return model;
}

std::optional<int32_t> BpeModel::TokenToId(std::string_view token) const {
  const auto it = vocab_.find(AsAbsl(token));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::IdToToken(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size() || !has_id_[id]) return nullptr;
  return &id_to_token_[id];
}

std::vector<int32_t> BpeModel::InitialSymbols(std::string_view word) const {
  std::vector<int32_t> symbols;
  symbols.reserve(word.size());
  std::optional<int32_t> pending_unk;  // fused unknown characters not yet emitted
  std::string piece;
  for (size_t pos = 0; pos < word.size();) {
    const size_t length = Utf8CharLength(word, pos);
    piece.clear();
    if (pos > 0) piece.append(continuing_subword_prefix_);
    piece.append(word.substr(pos, length));
    if (pos + length == word.size()) piece.append(end_of_word_suffix_);
    pos += length;

    const auto it = vocab_.find(piece);
    if (it != vocab_.end()) {
      if (pending_unk.has_value()) symbols.push_back(*std::exchange(pending_unk, std::nullopt));
      symbols.push_back(it->second);
      continue;
    }
    if (byte_fallback_) {
      bool all_bytes = true;
      for (char c : piece) all_bytes = all_bytes && byte_ids_[static_cast<uint8_t>(c)] >= 0;
      if (all_bytes) {
        if (pending_unk.has_value()) symbols.push_back(*std::exchange(pending_unk, std::nullopt));
        for (char c : piece) symbols.push_back(byte_ids_[static_cast<uint8_t>(c)]);
        continue;
      }
    }
    if (unk_id_.has_value()) {
      if (pending_unk.has_value() && !fuse_unk_) symbols.push_back(*pending_unk);
      pending_unk = unk_id_;
    }
    // Without an unknown token the character is dropped, as tokenizers does.
  }
  if (pending_unk.has_value()) symbols.push_back(*pending_unk);
  return symbols;
}

void BpeModel::MergeSymbols(std::vector<int32_t>& ids) const {
  if (ids.size() < 2 || merges_.empty()) return;
  struct Symbol {
    int32_t id;
    int32_t prev;
    int32_t next;
    bool alive;
  };
  struct Candidate {
    int32_t rank;
    int32_t pos;
    int32_t new_id;
    bool operator>(const Candidate& other) const {
      return rank != other.rank ? rank > other.rank : pos > other.pos;
    }
  };
  const int32_t n = static_cast<int32_t>(ids.size());
  std::vector<Symbol> symbols(ids.size());
  for (int32_t i = 0; i < n; ++i) symbols[i] = Symbol{ids[i], i - 1, i + 1 < n ? i + 1 : -1, true};

  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  const auto push_pair = [&](int32_t pos) {
    if (pos < 0 || symbols[pos].next < 0) return;
    const auto it = merges_.find(PairKey(symbols[pos].id, symbols[symbols[pos].next].id));
    if (it != merges_.end()) queue.push(Candidate{it->second.rank, pos, it->second.new_id});
  };
  for (int32_t i = 0; i + 1 < n; ++i) push_pair(i);

  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (!left.alive || left.next < 0) continue;
    // Skip stale candidates: the pair at this position changed since it was queued.
    const auto it = merges_.find(PairKey(left.id, symbols[left.next].id));
    if (it == merges_.end() || it->second.new_id != top.new_id) continue;
    Symbol& right = symbols[left.next];
    left.id = top.new_id;
    right.alive = false;
    left.next = right.next;
    if (left.next >= 0) symbols[left.next].prev = top.pos;
    push_pair(left.prev);
    push_pair(top.pos);
  }
  ids.clear();
  for (int32_t i = 0; i >= 0; i = symbols[i].next) ids.push_back(symbols[i].id);
}

void BpeModel::Tokenize(std::string_view word, std::vector<int32_t>& ids) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    const auto it = vocab_.find(AsAbsl(word));
    if (it != vocab_.end()) {
      ids.push_back(it->second);
      return;
    }
  }
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    const auto it = cache_.find(AsAbsl(word));
    if (it != cache_.end()) {
      ids.insert(ids.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> symbols = InitialSymbols(word);
  MergeSymbols(symbols);
  ids.insert(ids.end(), symbols.begin(), symbols.end());
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cache_.size() >= kMaxCacheEntries) cache_.clear();
    cache_.emplace(word, std::move(symbols));
  }
}

}  // namespace pagoda
