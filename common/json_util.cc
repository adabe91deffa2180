#include "common/json_util.h"

#include "absl/strings/str_cat.h"

namespace pagoda {

absl::StatusOr<nlohmann::json> ParseJson(std::string_view text, int max_depth) {
  bool too_deep = false;
  // Returning false at a value past the bound drops it before it is built; the parse itself goes
  // on (it is iterative) only to find the end of the text.
  const nlohmann::json::parser_callback_t bound = [&](int depth, nlohmann::json::parse_event_t,
                                                      nlohmann::json&) {
    if (depth > max_depth) too_deep = true;
    return !too_deep;
  };
  nlohmann::json parsed =
      nlohmann::json::parse(text.begin(), text.end(), bound, /*allow_exceptions=*/false);
  if (too_deep) {
    return absl::InvalidArgumentError(absl::StrCat("is nested deeper than ", max_depth, " levels"));
  }
  if (parsed.is_discarded()) {
    return absl::InvalidArgumentError("is not valid JSON (or has invalid UTF-8)");
  }
  return parsed;
}

}  // namespace pagoda
