// Parsing JSON that comes from outside (request bodies, config.json, tokenizer files, safetensors
// headers) without letting its shape take the process down. nlohmann parses iteratively, but
// copying, comparing, dumping and Pagoda's own readers recurse once per level: a 600 KB body
// nested 100 000 deep overflowed the router's stack (found by tests/fuzz). ParseJson refuses
// nesting beyond a bound before any such value exists.
//
//   absl::StatusOr<nlohmann::json> body = ParseJson(text);
//   if (!body.ok()) return absl::InvalidArgumentError(absl::StrCat("body ",
//   body.status().message()));
#pragma once

#include <string_view>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace pagoda {

/// Deepest nesting of arrays and objects ParseJson accepts (the chat templates' bound too).
inline constexpr int kMaxJsonDepth = 128;

/// The parsed value, or InvalidArgument "is not valid JSON (or has invalid UTF-8)" / "is nested
/// deeper than N levels" (messages meant to follow the name of what was parsed).
absl::StatusOr<nlohmann::json> ParseJson(std::string_view text, int max_depth = kMaxJsonDepth);

}  // namespace pagoda
