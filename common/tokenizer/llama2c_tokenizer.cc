#include "common/tokenizer/llama2c_tokenizer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <tuple>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "common/unicode_util.h"
#include "nlohmann/json.hpp"

namespace pagoda {
namespace {

constexpr const char* kSpacePiece = "\xE2\x96\x81";  // U+2581, SentencePiece's space
constexpr const char* kSpecialNames[3] = {"<unk>", "<s>", "</s>"};

template <typename T>
T ReadLittleEndian(std::span<const std::byte> bytes, size_t offset) {
  T value;
  std::memcpy(&value, bytes.data() + offset, sizeof(T));  // the format and all hosts: little-endian
  return value;
}

// True for "<0xNN>" with two upper-case hex digits.
bool IsBytePiece(std::string_view piece) {
  return piece.size() == 6 && piece.substr(0, 3) == "<0x" && piece[5] == '>' &&
         std::isxdigit(static_cast<unsigned char>(piece[3])) &&
         std::isxdigit(static_cast<unsigned char>(piece[4]));
}

nlohmann::ordered_json AddedTokenJson(int32_t id, const char* content) {
  return {{"id", id},        {"content", content},  {"single_word", false}, {"lstrip", false},
          {"rstrip", false}, {"normalized", false}, {"special", true}};
}

}  // namespace

absl::StatusOr<Llama2cVocab> ParseLlama2cTokenizer(std::span<const std::byte> bytes,
                                                   std::string_view source, int64_t vocab_size) {
  const std::string where(source);
  if (bytes.size() < 4) {
    return absl::InvalidArgumentError(where + ": too short for a llama2.c tokenizer header");
  }
  Llama2cVocab vocab;
  vocab.max_token_length = ReadLittleEndian<int32_t>(bytes, 0);
  if (vocab.max_token_length <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": invalid max_token_length ", vocab.max_token_length));
  }
  size_t offset = 4;
  while (vocab_size > 0 ? static_cast<int64_t>(vocab.pieces.size()) < vocab_size
                        : offset < bytes.size()) {
    const size_t index = vocab.pieces.size();
    if (bytes.size() - offset < 8) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": truncated at token ", index,
                                                     " (offset ", offset, " of ", bytes.size(),
                                                     " bytes)"));
    }
    const float score = ReadLittleEndian<float>(bytes, offset);
    const int32_t length = ReadLittleEndian<int32_t>(bytes, offset + 4);
    offset += 8;
    if (length < 0 || static_cast<size_t>(length) > bytes.size() - offset) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": token ", index, " has length ",
                                                     length, " past the end of the file"));
    }
    if (!std::isfinite(score)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": token ", index, " has score ", score));
    }
    vocab.scores.push_back(score);
    vocab.pieces.emplace_back(reinterpret_cast<const char*>(bytes.data() + offset),
                              static_cast<size_t>(length));
    offset += static_cast<size_t>(length);
  }
  if (vocab.pieces.size() < 3) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": has ", vocab.pieces.size(), " tokens; <unk>, <s>, </s> needed"));
  }
  return vocab;
}

absl::StatusOr<Llama2cVocab> ReadLlama2cTokenizer(const std::string& path, int64_t vocab_size) {
  ASSIGN_OR_RETURN(MappedFile file, MappedFile::Open(path));
  return ParseLlama2cTokenizer(file.bytes(), path, vocab_size);
}

absl::StatusOr<HfTokenizerFiles> ConvertLlama2cTokenizer(const Llama2cVocab& vocab,
                                                         int64_t model_max_length) {
  using Json = nlohmann::ordered_json;
  const size_t n = vocab.pieces.size();
  if (n < 3 || vocab.scores.size() != n) {
    return absl::InvalidArgumentError("llama2.c vocab needs <unk>, <s>, </s> and one score each");
  }
  // HF token text per id; "mergeable" pieces are the ordinary ones (not specials or bytes).
  std::vector<std::string> names(n);
  std::vector<bool> mergeable(n, false);
  absl::flat_hash_map<std::string, int32_t> ids;
  for (size_t i = 0; i < n; ++i) {
    const std::string& piece = vocab.pieces[i];
    if (i < 3) {
      names[i] = kSpecialNames[i];
    } else if (IsBytePiece(piece)) {
      names[i] = piece;
    } else {
      if (piece.empty() || !IsValidUtf8(piece)) {
        return absl::InvalidArgumentError(
            absl::StrCat("llama2.c token ", i, " is empty or not valid UTF-8"));
      }
      names[i] = absl::StrReplaceAll(piece, {{" ", kSpacePiece}});
      mergeable[i] = true;
    }
    if (!ids.emplace(names[i], static_cast<int32_t>(i)).second) {
      return absl::InvalidArgumentError(absl::StrCat("llama2.c tokens ", ids[names[i]], " and ", i,
                                                     " are both '", names[i], "'"));
    }
  }
  for (int b = 0; b < 256; ++b) {
    if (!ids.contains(absl::StrFormat("<0x%02X>", b))) {
      return absl::InvalidArgumentError(
          absl::StrFormat("llama2.c vocab lacks the byte token <0x%02X>", b));
    }
  }

  // Every split of a piece into two mergeable pieces is a merge, as llama2.c looks up any
  // adjacent pair. Higher score of the merged piece = lower rank; llama2.c keeps the first
  // (leftmost) best pair, which ranks cannot express across different pieces of equal score, so
  // those are ordered by id (SentencePiece gives merged pieces distinct scores).
  struct MergeEntry {
    float score;
    int32_t id;
    size_t split;  // bytes in the left part
    int32_t left;
    int32_t right;
  };
  std::vector<MergeEntry> merges;
  for (size_t i = 3; i < n; ++i) {
    if (!mergeable[i]) continue;
    const std::string& name = names[i];
    for (size_t split = Utf8CharLength(name, 0); split < name.size();
         split += Utf8CharLength(name, split)) {
      const auto left = ids.find(name.substr(0, split));
      const auto right = ids.find(name.substr(split));
      if (left == ids.end() || right == ids.end() || !mergeable[left->second] ||
          !mergeable[right->second]) {
        continue;
      }
      merges.push_back(
          MergeEntry{vocab.scores[i], static_cast<int32_t>(i), split, left->second, right->second});
    }
  }
  std::stable_sort(merges.begin(), merges.end(), [](const MergeEntry& a, const MergeEntry& b) {
    if (a.score != b.score) return a.score > b.score;
    return std::tie(a.id, a.split) < std::tie(b.id, b.split);
  });

  Json vocab_json = Json::object();
  for (size_t i = 0; i < n; ++i) vocab_json[names[i]] = i;
  Json merges_json = Json::array();
  for (const MergeEntry& m : merges) {
    merges_json.push_back(absl::StrCat(names[m.left], " ", names[m.right]));
  }
  const Json space_to_piece = {
      {"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kSpacePiece}};
  Json tokenizer = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", Json::array({AddedTokenJson(0, "<unk>"), AddedTokenJson(1, "<s>"),
                                    AddedTokenJson(2, "</s>")})},
      {"normalizer",
       {{"type", "Sequence"},
        {"normalizers",
         Json::array({{{"type", "Prepend"}, {"prepend", kSpacePiece}}, space_to_piece})}}},
      {"pre_tokenizer", nullptr},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", Json::array({{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
        {"pair", Json::array({{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                              {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                              {{"SpecialToken", {{"id", "<s>"}, {"type_id", 1}}}},
                              {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}})},
        {"special_tokens",
         {{"<s>", {{"id", "<s>"}, {"ids", Json::array({1})}, {"tokens", Json::array({"<s>"})}}}}}}},
      {"decoder",
       {{"type", "Sequence"},
        {"decoders",
         Json::array(
             {{{"type", "Replace"}, {"pattern", {{"String", kSpacePiece}}}, {"content", " "}},
              {{"type", "ByteFallback"}},
              {{"type", "Fuse"}},
              {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", "<unk>"},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", true},
        {"byte_fallback", true},
        {"ignore_merges", false},
        {"vocab", std::move(vocab_json)},
        {"merges", std::move(merges_json)}}}};

  const Json config = {{"add_bos_token", true},
                       {"add_eos_token", false},
                       {"bos_token", "<s>"},
                       {"eos_token", "</s>"},
                       {"unk_token", "<unk>"},
                       {"pad_token", nullptr},
                       {"clean_up_tokenization_spaces", false},
                       {"legacy", true},
                       {"model_max_length", model_max_length},
                       {"tokenizer_class", "LlamaTokenizer"}};
  return HfTokenizerFiles{tokenizer.dump(2) + "\n", config.dump(2) + "\n"};
}

}  // namespace pagoda
