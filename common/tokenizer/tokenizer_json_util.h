// Typed, non-throwing accessors for tokenizer.json objects, shared by the tokenizer components.
// Each returns an InvalidArgument error naming the source file and the field on a type mismatch.
//
//   ASSIGN_OR_RETURN(std::string content, GetString(json, "content", source));
//   ASSIGN_OR_RETURN(bool split, GetBool(json, "split", source, /*default_value=*/true));
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace pagoda {

inline absl::Status JsonFieldError(std::string_view source, std::string_view field,
                                   std::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(std::string(source), ": field '",
                                                 std::string(field), "' ", std::string(problem)));
}

/// Required string field.
inline absl::StatusOr<std::string> GetString(const nlohmann::json& object, const char* field,
                                             std::string_view source) {
  if (!object.is_object() || !object.contains(field)) {
    return JsonFieldError(source, field, "is missing");
  }
  const nlohmann::json& value = object.at(field);
  if (!value.is_string()) return JsonFieldError(source, field, "must be a string");
  return value.get<std::string>();
}

/// Optional string field: absent or null gives nullopt.
inline absl::StatusOr<std::optional<std::string>> GetOptionalString(const nlohmann::json& object,
                                                                    const char* field,
                                                                    std::string_view source) {
  if (!object.is_object() || !object.contains(field) || object.at(field).is_null()) {
    return std::optional<std::string>();
  }
  const nlohmann::json& value = object.at(field);
  if (!value.is_string()) return JsonFieldError(source, field, "must be a string or null");
  return std::optional<std::string>(value.get<std::string>());
}

/// Optional boolean field with a default for absent or null.
inline absl::StatusOr<bool> GetBool(const nlohmann::json& object, const char* field,
                                    std::string_view source, bool default_value) {
  if (!object.is_object() || !object.contains(field) || object.at(field).is_null()) {
    return default_value;
  }
  const nlohmann::json& value = object.at(field);
  if (!value.is_boolean()) return JsonFieldError(source, field, "must be a boolean");
  return value.get<bool>();
}

/// Optional non-negative integer field with a default for absent or null.
inline absl::StatusOr<int64_t> GetInt(const nlohmann::json& object, const char* field,
                                      std::string_view source, int64_t default_value) {
  if (!object.is_object() || !object.contains(field) || object.at(field).is_null()) {
    return default_value;
  }
  const nlohmann::json& value = object.at(field);
  if (!value.is_number_integer()) return JsonFieldError(source, field, "must be an integer");
  return value.get<int64_t>();
}

/// The "type" of a component object.
inline absl::StatusOr<std::string> GetType(const nlohmann::json& object, std::string_view what,
                                           std::string_view source) {
  if (!object.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(source), ": ", std::string(what), " must be an object or null"));
  }
  if (!object.contains("type") || !object.at("type").is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(source), ": ", std::string(what), " has no string 'type'"));
  }
  return object.at("type").get<std::string>();
}

/// A Split/Replace "pattern": {"String": s} or {"Regex": r}. Sets `*is_regex`.
inline absl::StatusOr<std::string> GetPattern(const nlohmann::json& object, std::string_view source,
                                              bool* is_regex) {
  if (!object.is_object() || !object.contains("pattern") || !object.at("pattern").is_object()) {
    return JsonFieldError(source, "pattern", "must be an object {\"String\"|\"Regex\": ...}");
  }
  const nlohmann::json& pattern = object.at("pattern");
  if (pattern.contains("Regex") && pattern.at("Regex").is_string()) {
    *is_regex = true;
    return pattern.at("Regex").get<std::string>();
  }
  if (pattern.contains("String") && pattern.at("String").is_string()) {
    *is_regex = false;
    return pattern.at("String").get<std::string>();
  }
  return JsonFieldError(source, "pattern", "must hold a string \"String\" or \"Regex\"");
}

}  // namespace pagoda
