#include "common/sampling_params.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <limits>
#include <optional>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/unicode_util.h"
#include "nlohmann/json.hpp"

namespace pagoda {
namespace {

// Comparisons are written so that NaN fails them.
absl::Status OutOfRange(const char* field, const std::string& allowed, double got) {
  return absl::InvalidArgumentError(
      absl::StrCat("sampling parameter ", field, " must be ", allowed, ", got ", got));
}

absl::Status WrongType(const char* field, const char* expected, const nlohmann::json& value) {
  return absl::InvalidArgumentError(absl::StrCat("sampling parameter ", field, " must be ",
                                                 expected, ", got JSON ", value.type_name()));
}

// Each reader leaves `out` alone when the field is absent or null.
absl::Status ReadFloat(const nlohmann::json& json, const char* field, float& out) {
  auto it = json.find(field);
  if (it == json.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_number()) return WrongType(field, "a number", *it);
  out = it->get<float>();
  return absl::OkStatus();
}

absl::Status ReadInt32(const nlohmann::json& json, const char* field, int32_t& out) {
  auto it = json.find(field);
  if (it == json.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_number_integer()) return WrongType(field, "an integer", *it);
  if (it->is_number_unsigned()) {
    const uint64_t value = it->get<uint64_t>();
    if (value > static_cast<uint64_t>(std::numeric_limits<int32_t>::max())) {
      return OutOfRange(field, "a 32-bit integer", static_cast<double>(value));
    }
    out = static_cast<int32_t>(value);
    return absl::OkStatus();
  }
  const int64_t value = it->get<int64_t>();
  if (value < std::numeric_limits<int32_t>::min() || value > std::numeric_limits<int32_t>::max()) {
    return OutOfRange(field, "a 32-bit integer", static_cast<double>(value));
  }
  out = static_cast<int32_t>(value);
  return absl::OkStatus();
}

absl::Status ReadBool(const nlohmann::json& json, const char* field, bool& out) {
  auto it = json.find(field);
  if (it == json.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_boolean()) return WrongType(field, "a boolean", *it);
  out = it->get<bool>();
  return absl::OkStatus();
}

// A non-negative 32-bit token id from a JSON integer; nullopt otherwise.
std::optional<int32_t> TokenId(const nlohmann::json& value) {
  if (!value.is_number_integer()) return std::nullopt;
  if (value.is_number_unsigned()) {
    const uint64_t id = value.get<uint64_t>();
    if (id > static_cast<uint64_t>(std::numeric_limits<int32_t>::max())) return std::nullopt;
    return static_cast<int32_t>(id);
  }
  const int64_t id = value.get<int64_t>();
  if (id < 0 || id > std::numeric_limits<int32_t>::max()) return std::nullopt;
  return static_cast<int32_t>(id);
}

// OpenAI: {"<token id>": bias, ...}; sorted by id, an id named twice ("7" and "07") refused.
absl::Status ReadLogitBias(const nlohmann::json& json,
                           std::vector<std::pair<int32_t, float>>& out) {
  auto it = json.find("logit_bias");
  if (it == json.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_object()) return WrongType("logit_bias", "an object of token ids to biases", *it);
  if (it->size() > SamplingParams::kMaxLogitBias) {
    return OutOfRange("logit_bias",
                      absl::StrCat("at most ", SamplingParams::kMaxLogitBias, " tokens"),
                      static_cast<double>(it->size()));
  }
  for (const auto& [key, value] : it->items()) {
    int32_t id = -1;
    if (!absl::SimpleAtoi(key, &id) || id < 0 || key.empty() || key[0] == '+' || key[0] == '-') {
      return absl::InvalidArgumentError(absl::StrCat(
          "sampling parameter logit_bias must be keyed by token ids, got key \"", key, "\""));
    }
    if (!value.is_number()) return WrongType("logit_bias", "an object of numbers", value);
    out.emplace_back(id, value.get<float>());
  }
  std::sort(out.begin(), out.end());
  for (size_t i = 1; i < out.size(); ++i) {
    if (out[i].first == out[i - 1].first) {
      return absl::InvalidArgumentError(
          absl::StrCat("sampling parameter logit_bias names token ", out[i].first, " twice"));
    }
  }
  return absl::OkStatus();
}

// vLLM: a non-empty array of token ids; sorted and deduplicated here.
absl::Status ReadAllowedTokenIds(const nlohmann::json& json, std::vector<int32_t>& out) {
  auto it = json.find("allowed_token_ids");
  if (it == json.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_array()) return WrongType("allowed_token_ids", "an array of token ids", *it);
  if (it->empty()) {
    return absl::InvalidArgumentError(
        "sampling parameter allowed_token_ids must not be empty (leave it out to allow all)");
  }
  if (it->size() > SamplingParams::kMaxAllowedTokenIds) {
    return OutOfRange("allowed_token_ids",
                      absl::StrCat("at most ", SamplingParams::kMaxAllowedTokenIds, " ids"),
                      static_cast<double>(it->size()));
  }
  for (const nlohmann::json& value : *it) {
    const std::optional<int32_t> id = TokenId(value);
    if (!id.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sampling parameter allowed_token_ids must hold non-negative 32-bit token ids, got ",
          value.is_number() ? value.dump() : absl::StrCat("JSON ", value.type_name())));
    }
    out.push_back(*id);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return absl::OkStatus();
}

// vLLM: an array of strings (empty: none). The strings' bounds are Validate()'s; an empty one
// is refused here already, as a mistake in the body.
absl::Status ReadBadWords(const nlohmann::json& json, std::vector<std::string>& out) {
  auto it = json.find("bad_words");
  if (it == json.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_array()) return WrongType("bad_words", "an array of strings", *it);
  if (it->size() > SamplingParams::kMaxBadWords) {
    return OutOfRange("bad_words", absl::StrCat("at most ", SamplingParams::kMaxBadWords, " words"),
                      static_cast<double>(it->size()));
  }
  for (const nlohmann::json& word : *it) {
    if (!word.is_string()) return WrongType("bad_words", "an array of strings", word);
    if (word.get_ref<const std::string&>().empty()) {
      return absl::InvalidArgumentError("sampling parameter bad_words must not hold empty strings");
    }
    out.push_back(word.get<std::string>());
  }
  return absl::OkStatus();
}

// Whitespace vLLM's str.lstrip() would remove before tokenizing (ASCII: the rest is rare).
bool AllWhitespace(const std::string& s) {
  return s.find_first_not_of(" \t\n\r\f\v") == std::string::npos;
}

absl::Status ValidateBadWords(const SamplingParams& params) {
  if (params.bad_words.size() > SamplingParams::kMaxBadWords) {
    return OutOfRange("bad_words", absl::StrCat("at most ", SamplingParams::kMaxBadWords, " words"),
                      static_cast<double>(params.bad_words.size()));
  }
  for (const std::string& word : params.bad_words) {
    if (AllWhitespace(word) || word.size() > SamplingParams::kMaxBadWordBytes ||
        !IsValidUtf8(word)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sampling parameter bad_words must hold UTF-8 strings of at most ",
          SamplingParams::kMaxBadWordBytes,
          " bytes that are not empty or only whitespace, got one of ", word.size(), " bytes"));
    }
  }
  // Two sequences a word at most (as given, and with a leading space).
  const size_t max_sequences = 2 * SamplingParams::kMaxBadWords;
  if (params.bad_words_token_ids.size() > max_sequences) {
    return OutOfRange("bad_words", absl::StrCat("at most ", max_sequences, " token id sequences"),
                      static_cast<double>(params.bad_words_token_ids.size()));
  }
  size_t total = 0;
  for (const std::vector<int32_t>& ids : params.bad_words_token_ids) {
    if (ids.empty()) {
      return absl::InvalidArgumentError(
          "sampling parameter bad_words must tokenize to non-empty token id sequences");
    }
    for (int32_t id : ids) {
      if (id < 0) return OutOfRange("bad_words", "non-negative token ids", id);
    }
    total += ids.size();
  }
  if (total > SamplingParams::kMaxBadWordsTokenIds) {
    return OutOfRange(
        "bad_words",
        absl::StrCat("at most ", SamplingParams::kMaxBadWordsTokenIds, " token ids in all"),
        static_cast<double>(total));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status SamplingParams::Validate() const {
  if (!(temperature >= 0.0f) || std::isinf(temperature)) {
    return OutOfRange("temperature", "finite and >= 0 (0 samples greedily)", temperature);
  }
  if (!(top_p > 0.0f && top_p <= 1.0f)) return OutOfRange("top_p", "in (0, 1]", top_p);
  if (top_k < -1) return OutOfRange("top_k", "-1 or 0 (disabled) or >= 1", top_k);
  if (!(min_p >= 0.0f && min_p <= 1.0f)) return OutOfRange("min_p", "in [0, 1]", min_p);
  if (!(repetition_penalty > 0.0f) || std::isinf(repetition_penalty)) {
    return OutOfRange("repetition_penalty", "finite and > 0 (1 disables it)", repetition_penalty);
  }
  if (!(presence_penalty >= -2.0f && presence_penalty <= 2.0f)) {
    return OutOfRange("presence_penalty", "in [-2, 2]", presence_penalty);
  }
  if (!(frequency_penalty >= -2.0f && frequency_penalty <= 2.0f)) {
    return OutOfRange("frequency_penalty", "in [-2, 2]", frequency_penalty);
  }
  if (logprobs < -1 || logprobs > kMaxLogprobs) {
    return OutOfRange("logprobs", absl::StrCat("in [0, ", kMaxLogprobs, "] (or -1 for none)"),
                      logprobs);
  }
  if (max_tokens < 1) return OutOfRange("max_tokens", ">= 1", max_tokens);
  if (min_tokens < 0 || min_tokens > max_tokens) {
    return OutOfRange("min_tokens", absl::StrCat("in [0, max_tokens = ", max_tokens, "]"),
                      min_tokens);
  }
  for (int32_t id : stop_token_ids) {
    if (id < 0) return OutOfRange("stop_token_ids", "non-negative token ids", id);
  }
  if (logit_bias.size() > kMaxLogitBias) {
    return OutOfRange("logit_bias", absl::StrCat("at most ", kMaxLogitBias, " tokens"),
                      static_cast<double>(logit_bias.size()));
  }
  for (size_t i = 0; i < logit_bias.size(); ++i) {
    const auto& [id, bias] = logit_bias[i];
    if (id < 0) return OutOfRange("logit_bias", "keyed by non-negative token ids", id);
    if (i > 0 && id <= logit_bias[i - 1].first) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sampling parameter logit_bias must name each token once, in order; ", id, " is not"));
    }
    if (!(bias >= -100.0f && bias <= 100.0f)) {
      return OutOfRange("logit_bias", "biases in [-100, 100]", bias);
    }
  }
  if (allowed_token_ids.size() > kMaxAllowedTokenIds) {
    return OutOfRange("allowed_token_ids", absl::StrCat("at most ", kMaxAllowedTokenIds, " ids"),
                      static_cast<double>(allowed_token_ids.size()));
  }
  for (size_t i = 0; i < allowed_token_ids.size(); ++i) {
    const int32_t id = allowed_token_ids[i];
    if (id < 0) return OutOfRange("allowed_token_ids", "non-negative token ids", id);
    if (i > 0 && id <= allowed_token_ids[i - 1]) {
      return absl::InvalidArgumentError(
          absl::StrCat("sampling parameter allowed_token_ids must name each token once, in "
                       "order; ",
                       id, " is not"));
    }
  }
  RETURN_IF_ERROR(ValidateBadWords(*this));
  if (stop.size() > kMaxStopStrings) {
    return OutOfRange("stop", absl::StrCat("at most ", kMaxStopStrings, " strings"),
                      static_cast<double>(stop.size()));
  }
  for (const std::string& s : stop) {
    if (s.empty() || s.size() > kMaxStopStringBytes || !IsValidUtf8(s)) {
      return absl::InvalidArgumentError(
          absl::StrCat("sampling parameter stop must hold non-empty UTF-8 strings of at most ",
                       kMaxStopStringBytes, " bytes, got one of ", s.size(), " bytes"));
    }
  }
  if (n < 1 || n > kMaxN) return OutOfRange("n", absl::StrCat("in [1, ", kMaxN, "]"), n);
  if (beam_width < 0 || beam_width > kMaxBeamWidth) {
    return OutOfRange("beam_width",
                      absl::StrCat("in [0, ", kMaxBeamWidth, "] (0 or 1: no beam search)"),
                      beam_width);
  }
  if (beam_search() && n > beam_width) {
    return OutOfRange("n", absl::StrCat("<= beam_width = ", beam_width, " with beam search"), n);
  }
  if (!std::isfinite(length_penalty)) {
    return OutOfRange("length_penalty", "finite", length_penalty);
  }
  switch (constraint_kind) {
    case ConstraintKind::kNone:
    case ConstraintKind::kJsonObject:
      if (!constraint.empty()) {
        return absl::InvalidArgumentError(
            "sampling parameter constraint must be empty without a constraint or for json_object");
      }
      break;
    case ConstraintKind::kJsonSchema:
    case ConstraintKind::kRegex:
    case ConstraintKind::kChoice:
    case ConstraintKind::kGrammar:
      if (constraint.empty() || constraint.size() > kMaxConstraintBytes ||
          !IsValidUtf8(constraint)) {
        return absl::InvalidArgumentError(
            absl::StrCat("sampling parameter constraint must be non-empty UTF-8 of at most ",
                         kMaxConstraintBytes, " bytes, got ", constraint.size(), " bytes"));
      }
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "sampling parameter constraint has an unknown kind ", static_cast<int>(constraint_kind)));
  }
  // Beam search ranks the raw logprobs of every token; a bias or an allow list has no place there.
  if (beam_search() && (!logit_bias.empty() || !allowed_token_ids.empty())) {
    return absl::InvalidArgumentError(
        absl::StrCat("sampling parameter ", logit_bias.empty() ? "allowed_token_ids" : "logit_bias",
                     " is not supported with beam search"));
  }
  // Beam search ranks every continuation as the model scores it: no banned words either.
  if (beam_search() && (!bad_words.empty() || !bad_words_token_ids.empty())) {
    return absl::InvalidArgumentError(
        "sampling parameter bad_words is not supported with beam search");
  }
  // A constraint allows only the grammar's tokens: beam search would replace them, and with
  // EOS masked (min_tokens) or ignored (ignore_eos) a finished grammar would leave no token.
  if (constrained() && beam_search()) {
    return absl::InvalidArgumentError(
        "sampling parameter constraint is not supported with beam search");
  }
  if (constrained() && (ignore_eos || min_tokens > 0)) {
    return absl::InvalidArgumentError(
        "sampling parameter constraint is not supported with ignore_eos or min_tokens");
  }
  return absl::OkStatus();
}

bool SamplingParams::IsJsonField(std::string_view key) {
  static constexpr std::string_view kFields[] = {"temperature",
                                                 "top_p",
                                                 "top_k",
                                                 "min_p",
                                                 "seed",
                                                 "max_tokens",
                                                 "min_tokens",
                                                 "ignore_eos",
                                                 "repetition_penalty",
                                                 "presence_penalty",
                                                 "frequency_penalty",
                                                 "stop",
                                                 "include_stop_str_in_output",
                                                 "stop_token_ids",
                                                 "logprobs",
                                                 "n",
                                                 "beam_width",
                                                 "use_beam_search",
                                                 "best_of",
                                                 "length_penalty",
                                                 "skip_special_tokens",
                                                 "logit_bias",
                                                 "allowed_token_ids",
                                                 "bad_words",
                                                 "disable_speculative_decoding"};
  return std::find(std::begin(kFields), std::end(kFields), key) != std::end(kFields);
}

absl::StatusOr<SamplingParams> SamplingParams::FromJson(const nlohmann::json& json) {
  if (!json.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("sampling parameters must be a JSON object, got JSON ", json.type_name()));
  }
  SamplingParams params;
  RETURN_IF_ERROR(ReadFloat(json, "temperature", params.temperature));
  RETURN_IF_ERROR(ReadFloat(json, "top_p", params.top_p));
  RETURN_IF_ERROR(ReadInt32(json, "top_k", params.top_k));
  RETURN_IF_ERROR(ReadFloat(json, "min_p", params.min_p));
  RETURN_IF_ERROR(ReadFloat(json, "repetition_penalty", params.repetition_penalty));
  RETURN_IF_ERROR(ReadFloat(json, "presence_penalty", params.presence_penalty));
  RETURN_IF_ERROR(ReadFloat(json, "frequency_penalty", params.frequency_penalty));
  RETURN_IF_ERROR(ReadInt32(json, "logprobs", params.logprobs));
  RETURN_IF_ERROR(ReadInt32(json, "max_tokens", params.max_tokens));
  RETURN_IF_ERROR(ReadInt32(json, "min_tokens", params.min_tokens));
  RETURN_IF_ERROR(ReadBool(json, "ignore_eos", params.ignore_eos));
  RETURN_IF_ERROR(ReadBool(json, "include_stop_str_in_output", params.include_stop_str_in_output));
  RETURN_IF_ERROR(ReadBool(json, "skip_special_tokens", params.skip_special_tokens));
  RETURN_IF_ERROR(
      ReadBool(json, "disable_speculative_decoding", params.disable_speculative_decoding));
  RETURN_IF_ERROR(ReadInt32(json, "n", params.n));
  RETURN_IF_ERROR(ReadInt32(json, "beam_width", params.beam_width));
  RETURN_IF_ERROR(ReadFloat(json, "length_penalty", params.length_penalty));
  // vLLM V0: use_beam_search with best_of beams (best_of defaults to n). Without beam search
  // best_of is the OpenAI API's candidate count, which the router reads itself
  // (router/frontend/openai_protocol.cc).
  bool use_beam_search = false;
  RETURN_IF_ERROR(ReadBool(json, "use_beam_search", use_beam_search));
  if (use_beam_search && params.beam_width == 0) {
    int32_t best_of = params.n;
    RETURN_IF_ERROR(ReadInt32(json, "best_of", best_of));
    params.beam_width = std::max(best_of, 2);
  }
  // OpenAI: "stop" is a string or an array of strings.
  if (auto it = json.find("stop"); it != json.end() && !it->is_null()) {
    if (it->is_string()) {
      params.stop.push_back(it->get<std::string>());
    } else if (it->is_array()) {
      for (const nlohmann::json& stop : *it) {
        if (!stop.is_string()) return WrongType("stop", "a string or an array of strings", stop);
        params.stop.push_back(stop.get<std::string>());
      }
    } else {
      return WrongType("stop", "a string or an array of strings", *it);
    }
  }

  if (auto it = json.find("seed"); it != json.end() && !it->is_null()) {
    if (!it->is_number_integer()) return WrongType("seed", "an integer", *it);
    // Negative seeds (Python accepts them) map onto uint64 by two's complement.
    params.seed =
        it->is_number_unsigned() ? it->get<uint64_t>() : static_cast<uint64_t>(it->get<int64_t>());
  }
  if (auto it = json.find("stop_token_ids"); it != json.end() && !it->is_null()) {
    if (!it->is_array()) return WrongType("stop_token_ids", "an array of integers", *it);
    for (const nlohmann::json& id : *it) {
      if (!id.is_number_integer()) {
        return WrongType("stop_token_ids", "an array of integers", id);
      }
      const int64_t value = id.is_number_unsigned()
                                ? static_cast<int64_t>(std::min<uint64_t>(
                                      id.get<uint64_t>(), std::numeric_limits<int64_t>::max()))
                                : id.get<int64_t>();
      if (value < 0 || value > std::numeric_limits<int32_t>::max()) {
        return OutOfRange("stop_token_ids", "non-negative 32-bit token ids",
                          static_cast<double>(value));
      }
      params.stop_token_ids.push_back(static_cast<int32_t>(value));
    }
  }
  RETURN_IF_ERROR(ReadLogitBias(json, params.logit_bias));
  RETURN_IF_ERROR(ReadAllowedTokenIds(json, params.allowed_token_ids));
  RETURN_IF_ERROR(ReadBadWords(json, params.bad_words));
  return params;
}

}  // namespace pagoda
