#include "common/tokenizer/added_vocabulary.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/tokenizer/normalizer.h"
#include "common/tokenizer/tokenizer_json_util.h"
#include "common/unicode_util.h"

namespace pagoda {
namespace {

absl::string_view AsAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

bool IsWordChar(char32_t cp) { return cp == '_' || IsUnicodeAlphanumeric(cp); }

// Start of the UTF-8 character that ends just before `pos`.
size_t PreviousCharStart(std::string_view text, size_t pos) {
  size_t start = pos - 1;
  while (start > 0 && (static_cast<uint8_t>(text[start]) & 0xC0) == 0x80) --start;
  return start;
}

}  // namespace

absl::StatusOr<std::vector<AddedToken>> ParseAddedTokens(const nlohmann::json& json,
                                                         std::string_view source) {
  std::vector<AddedToken> tokens;
  if (json.is_null()) return tokens;
  if (!json.is_array()) return JsonFieldError(source, "added_tokens", "must be an array");
  for (size_t i = 0; i < json.size(); ++i) {
    const nlohmann::json& entry = json[i];
    const std::string where = absl::StrCat(std::string(source), ": added_tokens[", i, "]");
    if (!entry.is_object()) return absl::InvalidArgumentError(where + " must be an object");
    AddedToken token;
    ASSIGN_OR_RETURN(const int64_t id, GetInt(entry, "id", where, -1));
    if (id < 0 || id >= (int64_t{1} << 24)) return JsonFieldError(where, "id", "must be valid");
    token.id = static_cast<int32_t>(id);
    ASSIGN_OR_RETURN(token.content, GetString(entry, "content", where));
    if (token.content.empty()) return JsonFieldError(where, "content", "must not be empty");
    if (!IsValidUtf8(token.content)) return JsonFieldError(where, "content", "is not UTF-8");
    ASSIGN_OR_RETURN(token.special, GetBool(entry, "special", where, false));
    ASSIGN_OR_RETURN(token.lstrip, GetBool(entry, "lstrip", where, false));
    ASSIGN_OR_RETURN(token.rstrip, GetBool(entry, "rstrip", where, false));
    ASSIGN_OR_RETURN(token.normalized, GetBool(entry, "normalized", where, !token.special));
    ASSIGN_OR_RETURN(token.single_word, GetBool(entry, "single_word", where, false));
    tokens.push_back(std::move(token));
  }
  return tokens;
}

void AddedVocabulary::Trie::Insert(std::string_view key, int32_t token_index) {
  int32_t node = 0;
  for (char c : key) {
    const uint64_t edge = (static_cast<uint64_t>(node) << 8) | static_cast<uint8_t>(c);
    auto it = edges.find(edge);
    if (it == edges.end()) {
      it = edges.emplace(edge, static_cast<int32_t>(token_at_node.size())).first;
      token_at_node.push_back(-1);
    }
    node = it->second;
  }
  // The first token with this content wins, as a later duplicate would not be reachable.
  if (token_at_node[node] < 0) token_at_node[node] = token_index;
}

AddedVocabulary::AddedVocabulary(std::vector<AddedToken> tokens, const Normalizer* normalizer)
    : tokens_(std::move(tokens)) {
  for (size_t i = 0; i < tokens_.size(); ++i) {
    const AddedToken& token = tokens_[i];
    by_id_.emplace(token.id, i);
    by_content_.emplace(token.content, token.id);
    id_limit_ = std::max<int64_t>(id_limit_, int64_t{token.id} + 1);
    if (token.normalized && normalizer != nullptr) {
      const std::string key = normalizer->Normalize(token.content);
      if (!key.empty()) normalized_.Insert(key, static_cast<int32_t>(i));
    } else if (token.normalized) {
      normalized_.Insert(token.content, static_cast<int32_t>(i));
    } else {
      raw_.Insert(token.content, static_cast<int32_t>(i));
    }
  }
}

const AddedToken* AddedVocabulary::FindById(int32_t id) const {
  const auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

std::optional<int32_t> AddedVocabulary::FindByContent(std::string_view content) const {
  const auto it = by_content_.find(AsAbsl(content));
  if (it == by_content_.end()) return std::nullopt;
  return it->second;
}

std::vector<AddedVocabulary::Piece> AddedVocabulary::Split(const Trie& trie,
                                                           std::string_view text) const {
  std::vector<Piece> pieces;
  size_t plain_start = 0;  // start of the plain text not yet emitted
  size_t pos = 0;
  while (!trie.empty() && pos < text.size()) {
    // Leftmost-longest: the longest token starting at the first position where one matches.
    int32_t node = 0;
    int32_t best_token = -1;
    size_t best_end = pos;
    for (size_t k = pos; k < text.size(); ++k) {
      const auto it =
          trie.edges.find((static_cast<uint64_t>(node) << 8) | static_cast<uint8_t>(text[k]));
      if (it == trie.edges.end()) break;
      node = it->second;
      if (trie.token_at_node[node] >= 0) {
        best_token = trie.token_at_node[node];
        best_end = k + 1;
      }
    }
    if (best_token < 0) {
      ++pos;
      continue;
    }
    const AddedToken& token = tokens_[best_token];
    size_t start = pos;
    size_t stop = best_end;
    pos = best_end;
    if (token.single_word) {
      const bool word_before =
          start > 0 && IsWordChar(DecodeUtf8At(text, PreviousCharStart(text, start)));
      const bool word_after = stop < text.size() && IsWordChar(DecodeUtf8At(text, stop));
      if (word_before || word_after) continue;
    }
    if (token.lstrip) {
      while (start > plain_start) {
        const size_t previous = PreviousCharStart(text, start);
        if (!IsUnicodeWhitespace(DecodeUtf8At(text, previous))) break;
        start = previous;
      }
    }
    if (token.rstrip) {
      while (stop < text.size() && IsUnicodeWhitespace(DecodeUtf8At(text, stop))) {
        stop += Utf8CharLength(text, stop);
      }
      pos = stop;
    }
    if (plain_start < start) {
      pieces.push_back(Piece{text.substr(plain_start, start - plain_start), plain_start, -1});
    }
    pieces.push_back(Piece{text.substr(start, stop - start), start, token.id});
    plain_start = stop;
  }
  if (plain_start < text.size()) {
    pieces.push_back(Piece{text.substr(plain_start), plain_start, -1});
  }
  return pieces;
}

}  // namespace pagoda
