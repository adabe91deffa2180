#include "engine/speculative_config.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "engine/scheduler.h"
#include "nlohmann/json.hpp"

namespace pagoda {
namespace {

constexpr int32_t kMaxSpeculativeTokens = 16;
constexpr int32_t kMaxLookup = 64;
// About 12 bytes a token kept (the token and its place in the pair index), up to twice that
// between compactions: 3–6 GiB at most.
constexpr int64_t kMaxHistoryTokens = int64_t{1} << 28;

absl::StatusOr<int32_t> ReadInt(const nlohmann::json& value, const std::string& key) {
  if (!value.is_number_integer()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--speculative-config: \"", key, "\" must be an integer"));
  }
  const int64_t v = value.get<int64_t>();
  if (v < 0 || v > kMaxLookup) {
    return absl::InvalidArgumentError(absl::StrCat("--speculative-config: \"", key, "\" ", v,
                                                   " is outside [0, ", kMaxLookup, "]"));
  }
  return static_cast<int32_t>(v);
}

}  // namespace

absl::Status SpeculativeConfig::Validate() const {
  if (!enabled()) return absl::OkStatus();
  if (num_speculative_tokens < 1 || num_speculative_tokens > kMaxSpeculativeTokens) {
    return absl::InvalidArgumentError(
        absl::StrCat("--speculative-config: \"num_speculative_tokens\" must be in [1, ",
                     kMaxSpeculativeTokens, "], got ", num_speculative_tokens));
  }
  if (method == SpeculativeMethod::kDraftModel && model.empty()) {
    return absl::InvalidArgumentError(
        "--speculative-config: method \"draft_model\" needs \"model\" (a directory or a .gguf)");
  }
  if (method == SpeculativeMethod::kNgram && !model.empty()) {
    return absl::InvalidArgumentError(
        "--speculative-config: \"model\" is for method \"draft_model\", not \"ngram\"");
  }
  if (prompt_lookup_min < 1 || prompt_lookup_max < prompt_lookup_min ||
      prompt_lookup_max > kMaxLookup) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--speculative-config: need 1 <= \"prompt_lookup_min\" <= \"prompt_lookup_max\" <= ",
        kMaxLookup, ", got ", prompt_lookup_min, " and ", prompt_lookup_max));
  }
  if (prompt_lookup_history_tokens < 0 || prompt_lookup_history_tokens > kMaxHistoryTokens) {
    return absl::InvalidArgumentError(
        absl::StrCat("--speculative-config: \"prompt_lookup_history_tokens\" must be in [0, 2^28], "
                     "got ",
                     prompt_lookup_history_tokens));
  }
  if (method == SpeculativeMethod::kDraftModel && prompt_lookup_history_tokens > 0) {
    return absl::InvalidArgumentError(
        "--speculative-config: \"prompt_lookup_history_tokens\" is for method \"ngram\", not a "
        "draft model");
  }
  return absl::OkStatus();
}

std::string SpeculativeConfig::ToJson() const {
  if (!enabled()) return "";
  nlohmann::json json{{"num_speculative_tokens", num_speculative_tokens}};
  if (method == SpeculativeMethod::kDraftModel) {
    json["method"] = "draft_model";
    json["model"] = model;
  } else {
    json["method"] = "ngram";
    json["prompt_lookup_max"] = prompt_lookup_max;
    json["prompt_lookup_min"] = prompt_lookup_min;
    json["prompt_lookup_agreement"] = prompt_lookup_agreement;
    if (prompt_lookup_history_tokens > 0) {
      json["prompt_lookup_history_tokens"] = prompt_lookup_history_tokens;
    }
  }
  if (disable_by_batch_size > 0) json["disable_by_batch_size"] = disable_by_batch_size;
  return json.dump();
}

absl::StatusOr<SpeculativeConfig> ParseSpeculativeConfig(const std::string& text) {
  SpeculativeConfig config;
  if (text.empty()) return config;
  const nlohmann::json json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    return absl::InvalidArgumentError(
        "--speculative-config must be a JSON object, e.g. '{\"method\": \"ngram\", "
        "\"num_speculative_tokens\": 4}'");
  }
  if (json.contains("model")) config.method = SpeculativeMethod::kDraftModel;
  bool has_max = false;
  bool has_min = false;
  bool has_agreement = false;
  for (const auto& [key, value] : json.items()) {
    if (key == "method") {
      const std::string method = value.is_string() ? value.get<std::string>() : "";
      if (method == "ngram" && !json.contains("model")) {
        config.method = SpeculativeMethod::kNgram;
      } else if (method == "draft_model") {
        config.method = SpeculativeMethod::kDraftModel;
      } else {
        return absl::InvalidArgumentError(absl::StrCat(
            "--speculative-config: \"method\" must be \"ngram\" or \"draft_model\" (with "
            "\"model\"), got ",
            value.dump()));
      }
    } else if (key == "model") {
      if (!value.is_string() || value.get<std::string>().empty()) {
        return absl::InvalidArgumentError(
            "--speculative-config: \"model\" must be a non-empty path (a directory or a .gguf)");
      }
      config.model = value.get<std::string>();
    } else if (key == "num_speculative_tokens") {
      ASSIGN_OR_RETURN(config.num_speculative_tokens, ReadInt(value, key));
    } else if (key == "prompt_lookup_max") {
      ASSIGN_OR_RETURN(config.prompt_lookup_max, ReadInt(value, key));
      has_max = true;
    } else if (key == "disable_by_batch_size") {
      if (!value.is_number_integer() || value.get<int64_t>() < 0 ||
          value.get<int64_t>() > (int64_t{1} << 20)) {
        return absl::InvalidArgumentError(
            "--speculative-config: \"disable_by_batch_size\" must be an integer in [0, 2^20]");
      }
      config.disable_by_batch_size = static_cast<int32_t>(value.get<int64_t>());
    } else if (key == "prompt_lookup_min") {
      ASSIGN_OR_RETURN(config.prompt_lookup_min, ReadInt(value, key));
      has_min = true;
    } else if (key == "prompt_lookup_agreement") {
      if (!value.is_boolean()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--speculative-config: \"prompt_lookup_agreement\" must be true or false, got ",
            value.dump()));
      }
      config.prompt_lookup_agreement = value.get<bool>();
      has_agreement = true;
    } else if (key == "prompt_lookup_history_tokens") {
      const bool in_range =
          value.is_number_integer() &&
          (value.is_number_unsigned()
               ? value.get<uint64_t>() <= uint64_t{kMaxHistoryTokens}
               : value.get<int64_t>() >= 0 && value.get<int64_t>() <= kMaxHistoryTokens);
      if (!in_range) {
        return absl::InvalidArgumentError(
            absl::StrCat("--speculative-config: \"prompt_lookup_history_tokens\" must be an "
                         "integer in [0, 2^28], got ",
                         value.dump()));
      }
      config.prompt_lookup_history_tokens = value.get<int64_t>();
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("--speculative-config: unknown key \"", key,
                       "\" (known: method, model, num_speculative_tokens, prompt_lookup_max, "
                       "prompt_lookup_min, prompt_lookup_agreement, prompt_lookup_history_tokens, "
                       "disable_by_batch_size)"));
    }
  }
  if (config.method == SpeculativeMethod::kNone) {
    return absl::InvalidArgumentError(
        "--speculative-config: \"method\" (\"ngram\") or \"model\" (a draft model) is required");
  }
  if (config.method == SpeculativeMethod::kDraftModel && (has_max || has_min || has_agreement)) {
    return absl::InvalidArgumentError(
        "--speculative-config: \"prompt_lookup_max\", \"prompt_lookup_min\" and "
        "\"prompt_lookup_agreement\" are for method \"ngram\", not a draft model");
  }
  if (!json.contains("num_speculative_tokens")) {
    return absl::InvalidArgumentError(
        "--speculative-config: \"num_speculative_tokens\" is required");
  }
  // One bound given alone sets the other where the default would contradict it.
  if (has_max && !has_min && config.prompt_lookup_min > config.prompt_lookup_max) {
    config.prompt_lookup_min = config.prompt_lookup_max;
  }
  if (has_min && !has_max && config.prompt_lookup_max < config.prompt_lookup_min) {
    config.prompt_lookup_max = config.prompt_lookup_min;
  }
  RETURN_IF_ERROR(config.Validate());
  return config;
}

std::string FormatSpeculativeStats(const SchedulerStats& stats) {
  const double drafts = static_cast<double>(std::max<int64_t>(stats.spec_num_drafts, 1));
  const double tokens = static_cast<double>(std::max<int64_t>(stats.spec_num_draft_tokens, 1));
  return absl::StrFormat(
      "speculative decoding: %d verifications, %d draft tokens, %d accepted (%.1f%%), %.2f "
      "tokens per verification, accepted by position [%s]",
      stats.spec_num_drafts, stats.spec_num_draft_tokens, stats.spec_num_accepted_tokens,
      100.0 * static_cast<double>(stats.spec_num_accepted_tokens) / tokens,
      1.0 + static_cast<double>(stats.spec_num_accepted_tokens) / drafts,
      absl::StrJoin(stats.spec_num_accepted_tokens_per_pos, ", "));
}

}  // namespace pagoda
