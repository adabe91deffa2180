#include "common/tokenizer/gguf_tokenizer.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <optional>
#include <tuple>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "common/unicode_util.h"
#include "nlohmann/json.hpp"

namespace pagoda {
namespace {

using Json = nlohmann::json;  // std::map objects: ordered_json's linear lookup is too slow here

constexpr const char* kSpacePiece = "\xE2\x96\x81";  // U+2581, SentencePiece's space
constexpr size_t kMaxTokens = size_t{1} << 24;       // BpeModel's id bound
constexpr size_t kMaxMerges = size_t{1} << 25;

// The pre-tokenizer regexes of llama.cpp (llm_tokenizer_bpe), applied one after the other, each
// cutting every piece the previous one left into matches and the text between them.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr const char* kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*)"
    R"(|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*)"
    R"(|\s*[\r\n]+|\s+(?!\S)|\s+)";

// One row per pre-tokenizer family: the tokenizer.ggml.pre names llama.cpp gives it and what
// it implies.
struct PreTokenizerSpec {
  std::vector<std::string> names;
  std::vector<std::string> patterns;
  bool ignore_merges = false;  // a word that is a token is never split (Llama-3)
  bool add_bos = false;        // llama.cpp's default when add_bos_token is absent
  bool nfc = false;            // Qwen2's tokenizer.json normalizes to NFC first
};

const std::vector<PreTokenizerSpec>& PreTokenizerSpecs() {
  static const auto* const specs = new std::vector<PreTokenizerSpec>{
      {{"default"}, {R"([\p{P}\$\+<=>\^~\|]+)", kGpt2Pattern, R"(\p{N}+)", "[0-9][0-9][0-9]"}},
      {{"llama3", "llama-v3", "llama-bpe", "falcon3"}, {kLlama3Pattern}, true, true},
      {{"qwen2"}, {kQwen2Pattern}, false, false, true},
      {{"smollm", "starcoder", "refact", "codeshell", "exaone", "minerva-7b"},
       {R"(\p{N})", kGpt2Pattern}},
      {{"gpt-2", "phi-2", "roberta-bpe", "mpt", "olmo"}, {kGpt2Pattern}},
  };
  return *specs;
}

// The texts llama.cpp ends generation at (llama_vocab::impl::load's EOT/EOG detection).
constexpr std::string_view kEndOfGenerationTexts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "<EOT>"};

absl::string_view AsAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// The validated tokens: text per id (empty ones renamed as llama.cpp does), their types and the
// reverse map.
struct Vocab {
  std::vector<std::string> tokens;
  std::vector<GgufTokenType> types;
  absl::flat_hash_map<std::string, int32_t> ids;

  std::optional<int32_t> Find(std::string_view text) const {
    const auto it = ids.find(AsAbsl(text));
    if (it == ids.end()) return std::nullopt;
    return it->second;
  }
};

absl::StatusOr<Vocab> ValidateTokens(const GgufTokenizerData& data, const std::string& where) {
  const size_t n = data.tokens.size();
  if (n == 0) return absl::InvalidArgumentError(where + ": tokenizer.ggml.tokens is empty");
  if (n > kMaxTokens) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": tokenizer.ggml.tokens has ", n, " tokens, more than ", kMaxTokens));
  }
  if (!data.scores.empty() && data.scores.size() != n) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": tokenizer.ggml.scores has ", data.scores.size(), " entries for ", n, " tokens"));
  }
  if (!data.token_types.empty() && data.token_types.size() != n) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": tokenizer.ggml.token_type has ",
                                                   data.token_types.size(), " entries for ", n,
                                                   " tokens"));
  }
  Vocab vocab;
  vocab.tokens.reserve(n);
  vocab.types.reserve(n);
  vocab.ids.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    std::string text(data.tokens[i]);
    if (text.empty()) text = absl::StrCat("[EMPTY_", i, "]");  // llama.cpp's name for them
    if (!IsValidUtf8(text)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": tokenizer.ggml.tokens[", i, "] is not valid UTF-8"));
    }
    if (!data.scores.empty() && !std::isfinite(data.scores[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": tokenizer.ggml.scores[", i, "] is ", data.scores[i]));
    }
    GgufTokenType type = GgufTokenType::kNormal;
    if (!data.token_types.empty()) {
      const int32_t value = data.token_types[i];
      if (value < static_cast<int32_t>(GgufTokenType::kNormal) ||
          value > static_cast<int32_t>(GgufTokenType::kByte)) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": tokenizer.ggml.token_type[", i,
                                                       "] is ", value,
                                                       "; known types are 1 (normal) to 6 (byte)"));
      }
      type = static_cast<GgufTokenType>(value);
    }
    const auto [it, inserted] = vocab.ids.emplace(text, static_cast<int32_t>(i));
    if (!inserted) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": tokenizer.ggml.tokens[", i, "] repeats token ", it->second, " '", text, "'"));
    }
    vocab.tokens.push_back(std::move(text));
    vocab.types.push_back(type);
  }
  return vocab;
}

absl::Status ValidateIds(const GgufTokenizerData& data, size_t num_tokens,
                         const std::string& where) {
  const std::pair<const char*, const std::optional<int32_t>*> ids[] = {
      {"bos_token_id", &data.bos},     {"eos_token_id", &data.eos},
      {"eot_token_id", &data.eot},     {"eom_token_id", &data.eom},
      {"unknown_token_id", &data.unk}, {"padding_token_id", &data.pad}};
  for (const auto& [key, id] : ids) {
    if (id->has_value() && (**id < 0 || static_cast<size_t>(**id) >= num_tokens)) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": tokenizer.ggml.", key, " = ", **id,
                                                     " is not a token id (", num_tokens,
                                                     " tokens)"));
    }
  }
  return absl::OkStatus();
}

// The file's merges as token pairs; each must name two tokens whose concatenation is a token.
absl::StatusOr<std::vector<std::pair<int32_t, int32_t>>> ParseMerges(const GgufTokenizerData& data,
                                                                     const Vocab& vocab,
                                                                     const std::string& where) {
  if (data.merges.size() > kMaxMerges) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": tokenizer.ggml.merges has ",
                                                   data.merges.size(), " entries, more than ",
                                                   kMaxMerges));
  }
  std::vector<std::pair<int32_t, int32_t>> merges;
  merges.reserve(data.merges.size());
  for (size_t i = 0; i < data.merges.size(); ++i) {
    const std::string merge(data.merges[i]);
    const std::string key = absl::StrCat("tokenizer.ggml.merges[", i, "]");
    const size_t space = merge.find(' ');
    if (space == 0 || space == std::string::npos || space + 1 == merge.size() ||
        merge.find(' ', space + 1) != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": ", key, " must be two tokens separated by one space, got '", merge, "'"));
    }
    const std::string left = merge.substr(0, space);
    const std::string right = merge.substr(space + 1);
    const std::optional<int32_t> left_id = vocab.Find(left);
    const std::optional<int32_t> right_id = vocab.Find(right);
    for (const auto& [part, id] : {std::pair(left, left_id), std::pair(right, right_id)}) {
      if (!id.has_value()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": ", key, " names '", part, "', which is not a token"));
      }
    }
    if (!vocab.Find(absl::StrCat(left, right)).has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": ", key, " makes '", left, right, "', which is not a token"));
    }
    merges.emplace_back(*left_id, *right_id);
  }
  return merges;
}

// Merges for a SentencePiece vocabulary that ships none, derived from the scores exactly as
// transformers' GGUFTokenizerSkeleton does: every split of a token into two tokens, those of one
// token ordered by (left score, right score) descending, then all by the token's score
// descending; both sorts stable.
std::vector<std::pair<int32_t, int32_t>> DeriveMerges(const Vocab& vocab,
                                                      const std::vector<float>& scores) {
  struct Candidate {
    float score;  // of the merged token
    int32_t left;
    int32_t right;
  };
  std::vector<Candidate> merges;
  std::vector<Candidate> local;
  for (size_t id = 0; id < vocab.tokens.size(); ++id) {
    const std::string& token = vocab.tokens[id];
    local.clear();
    for (size_t split = Utf8CharLength(token, 0); split < token.size();
         split += Utf8CharLength(token, split)) {
      const std::optional<int32_t> left = vocab.Find(std::string_view(token).substr(0, split));
      const std::optional<int32_t> right = vocab.Find(std::string_view(token).substr(split));
      if (left.has_value() && right.has_value()) local.push_back({scores[id], *left, *right});
    }
    std::stable_sort(local.begin(), local.end(), [&](const Candidate& a, const Candidate& b) {
      return std::tie(scores[a.left], scores[a.right]) > std::tie(scores[b.left], scores[b.right]);
    });
    merges.insert(merges.end(), local.begin(), local.end());
  }
  std::stable_sort(merges.begin(), merges.end(),
                   [](const Candidate& a, const Candidate& b) { return a.score > b.score; });
  std::vector<std::pair<int32_t, int32_t>> pairs;
  pairs.reserve(merges.size());
  for (const Candidate& m : merges) pairs.emplace_back(m.left, m.right);
  return pairs;
}

absl::StatusOr<const PreTokenizerSpec*> FindPreTokenizer(std::string_view name,
                                                         const std::string& where) {
  for (const PreTokenizerSpec& spec : PreTokenizerSpecs()) {
    if (std::find(spec.names.begin(), spec.names.end(), name) != spec.names.end()) return &spec;
  }
  return absl::UnimplementedError(
      absl::StrCat(where, ": tokenizer.ggml.pre '", std::string(name),
                   "' is not supported (supported: ", SupportedGgufPreTokenizers(), ")"));
}

Json AddedTokenJson(int32_t id, const std::string& content, bool special) {
  return {{"id", id},        {"content", content},  {"single_word", false}, {"lstrip", false},
          {"rstrip", false}, {"normalized", false}, {"special", special}};
}

Json Replace(std::string_view from, std::string_view to) {
  return {{"type", "Replace"}, {"pattern", {{"String", from}}}, {"content", to}};
}

// Control and unknown tokens are special; user-defined ones are matched in the text but not
// special. Without token types, as transformers does: UNK, BOS and EOS.
Json AddedTokens(const GgufTokenizerData& data, const Vocab& vocab) {
  Json added = Json::array();
  if (data.token_types.empty()) {
    std::vector<int32_t> ids;
    for (const std::optional<int32_t>& id : {data.unk, data.bos, data.eos}) {
      if (id.has_value() && std::find(ids.begin(), ids.end(), *id) == ids.end()) {
        ids.push_back(*id);
      }
    }
    std::sort(ids.begin(), ids.end());
    for (int32_t id : ids) added.push_back(AddedTokenJson(id, vocab.tokens[id], true));
    return added;
  }
  for (size_t id = 0; id < vocab.tokens.size(); ++id) {
    const GgufTokenType type = vocab.types[id];
    if (type == GgufTokenType::kControl || type == GgufTokenType::kUnknown ||
        type == GgufTokenType::kUserDefined) {
      added.push_back(AddedTokenJson(static_cast<int32_t>(id), vocab.tokens[id],
                                     type != GgufTokenType::kUserDefined));
    }
  }
  return added;
}

Json ModelJson(const Vocab& vocab, const std::vector<std::pair<int32_t, int32_t>>& merges,
               const std::optional<int32_t>& unk, bool byte_fallback, bool ignore_merges) {
  Json vocab_json = Json::object();
  for (size_t id = 0; id < vocab.tokens.size(); ++id) vocab_json[vocab.tokens[id]] = id;
  Json merges_json = Json::array();
  for (const auto& [left, right] : merges) {
    merges_json.push_back(Json::array({vocab.tokens[left], vocab.tokens[right]}));
  }
  return {{"type", "BPE"},
          {"dropout", nullptr},
          {"unk_token", unk.has_value() ? Json(vocab.tokens[*unk]) : Json(nullptr)},
          {"continuing_subword_prefix", nullptr},
          {"end_of_word_suffix", nullptr},
          {"fuse_unk", byte_fallback},
          {"byte_fallback", byte_fallback},
          {"ignore_merges", ignore_merges},
          {"vocab", std::move(vocab_json)},
          {"merges", std::move(merges_json)}};
}

// Byte-level BPE: the spec's regexes, then the bytes mapped to GPT-2's printable alphabet.
absl::StatusOr<Json> Gpt2TokenizerJson(const GgufTokenizerData& data, const Vocab& vocab,
                                       const PreTokenizerSpec& spec, const std::string& where) {
  if (data.merges.empty()) {
    return absl::InvalidArgumentError(where + ": tokenizer.ggml.merges is missing or empty (a " +
                                      "gpt2 tokenizer needs its merges)");
  }
  ASSIGN_OR_RETURN(const auto merges, ParseMerges(data, vocab, where));
  Json steps = Json::array();
  for (const std::string& pattern : spec.patterns) {
    steps.push_back({{"type", "Split"},
                     {"pattern", {{"Regex", pattern}}},
                     {"behavior", "Isolated"},
                     {"invert", false}});
  }
  steps.push_back({{"type", "ByteLevel"},
                   {"add_prefix_space", false},
                   {"trim_offsets", false},
                   {"use_regex", false}});
  return Json{{"version", "1.0"},
              {"added_tokens", AddedTokens(data, vocab)},
              {"normalizer", spec.nfc ? Json{{"type", "NFC"}} : Json(nullptr)},
              {"pre_tokenizer", {{"type", "Sequence"}, {"pretokenizers", std::move(steps)}}},
              {"post_processor", nullptr},
              {"decoder", {{"type", "ByteLevel"}}},
              {"model", ModelJson(vocab, merges, data.unk, false, spec.ignore_merges)}};
}

// SentencePiece-style BPE as transformers' GGUF reading builds it (legacy Llama tokenizer).
absl::StatusOr<Json> LlamaTokenizerJson(const GgufTokenizerData& data, const Vocab& vocab,
                                        const std::string& where) {
  std::vector<std::pair<int32_t, int32_t>> merges;
  if (!data.merges.empty()) {
    ASSIGN_OR_RETURN(merges, ParseMerges(data, vocab, where));
  } else if (data.scores.empty()) {
    return absl::InvalidArgumentError(where + ": a llama tokenizer needs tokenizer.ggml.scores " +
                                      "(or tokenizer.ggml.merges)");
  } else {
    merges = DeriveMerges(vocab, data.scores);
  }
  for (size_t id = 0; id < vocab.tokens.size(); ++id) {
    const std::string& token = vocab.tokens[id];
    if (vocab.types[id] == GgufTokenType::kByte &&
        !(token.size() == 6 && token.compare(0, 3, "<0x") == 0 && token[5] == '>' &&
          std::isxdigit(static_cast<unsigned char>(token[3])) &&
          std::isxdigit(static_cast<unsigned char>(token[4])))) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": tokenizer.ggml.tokens[", id, "] '",
                                                     token, "' has type byte but is not <0xNN>"));
    }
  }
  const bool add_space_prefix = data.add_space_prefix.value_or(true);
  Json normalizers = Json::array();
  if (add_space_prefix) normalizers.push_back({{"type", "Prepend"}, {"prepend", kSpacePiece}});
  normalizers.push_back(Replace(" ", kSpacePiece));
  Json decoders = Json::array({{{"type", "ByteFallback"}}, {{"type", "Fuse"}}});
  decoders.push_back(Replace(kSpacePiece, " "));
  if (add_space_prefix) {
    decoders.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
  }
  return Json{{"version", "1.0"},
              {"added_tokens", AddedTokens(data, vocab)},
              {"normalizer", {{"type", "Sequence"}, {"normalizers", std::move(normalizers)}}},
              {"pre_tokenizer", nullptr},
              {"post_processor", nullptr},
              {"decoder", {{"type", "Sequence"}, {"decoders", std::move(decoders)}}},
              {"model", ModelJson(vocab, merges, data.unk, true, false)}};
}

// Forwards to the tokenizer built from the synthesized files and adds the GGUF's stop ids.
class GgufTokenizer final : public Tokenizer {
 public:
  GgufTokenizer(std::unique_ptr<Tokenizer> inner, std::vector<int32_t> stop_ids)
      : inner_(std::move(inner)), stop_ids_(std::move(stop_ids)) {}

  std::vector<int32_t> Encode(std::string_view text, bool add_special_tokens) const override {
    return inner_->Encode(text, add_special_tokens);
  }
  std::string Decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const override {
    return inner_->Decode(ids, skip_special_tokens);
  }
  int64_t vocab_size() const override { return inner_->vocab_size(); }
  std::optional<std::string> IdToToken(int32_t id) const override { return inner_->IdToToken(id); }
  std::optional<int32_t> TokenToId(std::string_view token) const override {
    return inner_->TokenToId(token);
  }
  bool IsSpecial(int32_t id) const override { return inner_->IsSpecial(id); }
  std::optional<int32_t> bos_token_id() const override { return inner_->bos_token_id(); }
  std::optional<int32_t> eos_token_id() const override { return inner_->eos_token_id(); }
  std::vector<int32_t> stop_token_ids() const override { return stop_ids_; }
  const std::string& chat_template() const override { return inner_->chat_template(); }

 private:
  std::unique_ptr<Tokenizer> inner_;
  std::vector<int32_t> stop_ids_;
};

// EOS, EOT, EOM, then every token llama.cpp treats as end of generation by its text.
std::vector<int32_t> StopIds(const GgufTokenizerData& data, const Vocab& vocab) {
  std::vector<int32_t> ids;
  auto add = [&ids](int32_t id) {
    if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
  };
  for (const std::optional<int32_t>& id : {data.eos, data.eot, data.eom}) {
    if (id.has_value()) add(*id);
  }
  std::vector<int32_t> by_text;
  for (std::string_view text : kEndOfGenerationTexts) {
    if (std::optional<int32_t> id = vocab.Find(text)) by_text.push_back(*id);
  }
  std::sort(by_text.begin(), by_text.end());
  for (int32_t id : by_text) add(id);
  return ids;
}

struct Converted {
  HfTokenizerFiles files;
  std::vector<int32_t> stop_ids;
};

absl::StatusOr<Converted> Convert(const GgufTokenizerData& data, std::string_view source) {
  const std::string where(source);
  if (data.model != "gpt2" && data.model != "llama") {
    return absl::UnimplementedError(absl::StrCat(where, ": tokenizer.ggml.model '", data.model,
                                                 "' is not supported (supported: gpt2, llama)"));
  }
  ASSIGN_OR_RETURN(const Vocab vocab, ValidateTokens(data, where));
  RETURN_IF_ERROR(ValidateIds(data, vocab.tokens.size(), where));
  if (!IsValidUtf8(data.chat_template)) {
    return absl::InvalidArgumentError(where + ": tokenizer.chat_template is not valid UTF-8");
  }

  Json tokenizer;
  bool add_bos = true;  // llama.cpp's defaults: SentencePiece adds BOS, byte-level BPE by family
  if (data.model == "gpt2") {
    ASSIGN_OR_RETURN(const PreTokenizerSpec* spec,
                     FindPreTokenizer(data.pre.empty() ? "default" : data.pre, where));
    ASSIGN_OR_RETURN(tokenizer, Gpt2TokenizerJson(data, vocab, *spec, where));
    add_bos = spec->add_bos;
  } else {
    ASSIGN_OR_RETURN(tokenizer, LlamaTokenizerJson(data, vocab, where));
  }
  add_bos = data.add_bos.value_or(add_bos);
  const bool add_eos = data.add_eos.value_or(false);
  if (add_bos && !data.bos.has_value()) {
    return absl::InvalidArgumentError(
        where + ": BOS is to be added (tokenizer.ggml.add_bos_token) but there is no " +
        "tokenizer.ggml.bos_token_id");
  }
  if (add_eos && !data.eos.has_value()) {
    return absl::InvalidArgumentError(where +
                                      ": tokenizer.ggml.add_eos_token is true but there is no " +
                                      "tokenizer.ggml.eos_token_id");
  }

  auto token_or_null = [&vocab](const std::optional<int32_t>& id) {
    return id.has_value() ? Json(vocab.tokens[*id]) : Json(nullptr);
  };
  Json config = {{"add_bos_token", add_bos},
                 {"add_eos_token", add_eos},
                 {"bos_token", token_or_null(data.bos)},
                 {"eos_token", token_or_null(data.eos)},
                 {"unk_token", token_or_null(data.unk)},
                 {"pad_token", token_or_null(data.pad)},
                 {"clean_up_tokenization_spaces", false},
                 {"tokenizer_class", "PreTrainedTokenizerFast"}};
  if (!data.chat_template.empty()) config["chat_template"] = data.chat_template;
  return Converted{HfTokenizerFiles{tokenizer.dump(), config.dump()}, StopIds(data, vocab)};
}

}  // namespace

std::string SupportedGgufPreTokenizers() {
  std::vector<std::string> names;
  for (const PreTokenizerSpec& spec : PreTokenizerSpecs()) {
    names.insert(names.end(), spec.names.begin(), spec.names.end());
  }
  return absl::StrJoin(names, ", ");
}

absl::StatusOr<HfTokenizerFiles> ConvertGgufTokenizer(const GgufTokenizerData& data,
                                                      std::string_view source) {
  ASSIGN_OR_RETURN(Converted converted, Convert(data, source));
  return std::move(converted.files);
}

absl::StatusOr<std::unique_ptr<Tokenizer>> TokenizerFromGgufData(const GgufTokenizerData& data,
                                                                 std::string_view source) {
  ASSIGN_OR_RETURN(Converted converted, Convert(data, source));
  ASSIGN_OR_RETURN(
      std::unique_ptr<Tokenizer> inner,
      Tokenizer::FromJson(converted.files.tokenizer_json, converted.files.tokenizer_config_json,
                          absl::StrCat(std::string(source), " (GGUF tokenizer)")));
  return std::unique_ptr<Tokenizer>(
      std::make_unique<GgufTokenizer>(std::move(inner), std::move(converted.stop_ids)));
}

absl::StatusOr<GgufTokenizerData> GgufTokenizerDataFromFile(const GgufFile& file) {
  GgufTokenizerData data;
  ASSIGN_OR_RETURN(const std::string_view model, file.GetString("tokenizer.ggml.model"));
  data.model = std::string(model);
  ASSIGN_OR_RETURN(data.tokens, file.GetStringArray("tokenizer.ggml.tokens"));
  // Optional keys: absent is fine, present with the wrong type is not.
  const auto optional = [](auto statusor, auto& out) -> absl::Status {
    if (absl::IsNotFound(statusor.status())) return absl::OkStatus();
    if (!statusor.ok()) return statusor.status();
    out = *std::move(statusor);
    return absl::OkStatus();
  };
  std::string_view pre = "default";
  RETURN_IF_ERROR(optional(file.GetString("tokenizer.ggml.pre"), pre));
  data.pre = std::string(pre);
  RETURN_IF_ERROR(optional(file.GetF32Array("tokenizer.ggml.scores"), data.scores));
  RETURN_IF_ERROR(optional(file.GetI32Array("tokenizer.ggml.token_type"), data.token_types));
  RETURN_IF_ERROR(optional(file.GetStringArray("tokenizer.ggml.merges"), data.merges));
  const std::pair<const char*, std::optional<int32_t>*> ids[] = {
      {"tokenizer.ggml.bos_token_id", &data.bos},
      {"tokenizer.ggml.eos_token_id", &data.eos},
      {"tokenizer.ggml.eot_token_id", &data.eot},
      {"tokenizer.ggml.eom_token_id", &data.eom},
      {"tokenizer.ggml.unknown_token_id", &data.unk},
      {"tokenizer.ggml.padding_token_id", &data.pad}};
  for (const auto& [key, id] : ids) {
    std::optional<int64_t> value;
    RETURN_IF_ERROR(optional(file.GetI64(key), value));
    if (!value.has_value()) continue;
    if (*value < 0 || *value > std::numeric_limits<int32_t>::max()) {
      return absl::InvalidArgumentError(
          absl::StrCat(file.source(), ": ", key, " = ", *value, " is not a token id"));
    }
    *id = static_cast<int32_t>(*value);
  }
  const std::pair<const char*, std::optional<bool>*> flags[] = {
      {"tokenizer.ggml.add_bos_token", &data.add_bos},
      {"tokenizer.ggml.add_eos_token", &data.add_eos},
      {"tokenizer.ggml.add_space_prefix", &data.add_space_prefix}};
  for (const auto& [key, flag] : flags) {
    std::optional<bool> value;
    RETURN_IF_ERROR(optional(file.GetBool(key), value));
    *flag = value;
  }
  std::string_view chat_template;
  RETURN_IF_ERROR(optional(file.GetString("tokenizer.chat_template"), chat_template));
  data.chat_template = std::string(chat_template);
  return data;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> TokenizerFromGguf(const GgufFile& file) {
  ASSIGN_OR_RETURN(const GgufTokenizerData data, GgufTokenizerDataFromFile(file));
  return TokenizerFromGgufData(data, file.source());
}

}  // namespace pagoda
