// Renders a parsed Jinja2 template (jinja_ast.h) over nlohmann::json values, with limits that
// make it safe on untrusted templates and inputs.
//
//   jinja::RenderLimits limits;
//   ASSIGN_OR_RETURN(std::string out, jinja::Render(body, context, limits));
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/chat_template/internal/jinja_ast.h"
#include "nlohmann/json.hpp"

namespace pagoda::jinja {

struct RenderLimits {
  int64_t max_output_bytes = 1 << 20;     // also bounds every intermediate string and list
  int64_t max_loop_iterations = 100'000;  // summed over all loops of one render
  int max_call_depth = 64;                // nested macro calls and expression evaluation
  std::function<absl::Time()> now;        // strftime_now's clock (UTC); null means absl::Now
};

/// Renders `body` with the variables of the JSON object `context`. Every failure, including
/// raise_exception(msg) from the template, is InvalidArgument.
absl::StatusOr<std::string> Render(const Body& body, const nlohmann::json& context,
                                   const RenderLimits& limits);

/// Python's str() of a JSON value: True/False/None, 1.0, ['a', 1], {'k': 'v'}.
std::string PyStr(const nlohmann::json& value);
/// transformers' tojson: json.dumps(value, ensure_ascii=False, indent=indent) (indent < 0: none).
std::string ToJson(const nlohmann::json& value, int indent);

}  // namespace pagoda::jinja
