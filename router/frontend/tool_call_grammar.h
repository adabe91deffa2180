// The GBNF that forces a model's output into a tool-call format: used for tool_choice
// "required" (any of the tools) and a named function (that one), so the output always parses
// (tool_call_parser.h) and each call's arguments match its function's parameters schema, as
// compact JSON (no whitespace between tokens).
//
//   hermes       <tool_call>\n{"name": "f", "arguments": ARGS}\n</tool_call>  ("\n" between calls)
//   llama3_json  {"name": "f", "parameters": ARGS}                           ("; " between calls)
//   mistral      [TOOL_CALLS][{"name": "f", "arguments": ARGS}, ...]
//
//   ASSIGN_OR_RETURN(std::string gbnf,
//                    ToolCallGrammar(ToolCallFormat::kHermes, functions, /*parallel=*/false));
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "router/frontend/tool_call_parser.h"

namespace pagoda {

/// One `tools` entry of type function.
struct ToolFunction {
  std::string name;
  nlohmann::json parameters;  // a JSON Schema; {"type": "object"} (no arguments) when absent
};

/// At most this many calls in one output with parallel calls (so a model cannot call forever).
inline constexpr int kMaxParallelToolCalls = 8;

/// GBNF (start rule `root`) for one call of any of `functions` (non-empty), or 1 to
/// kMaxParallelToolCalls of them with `parallel`. InvalidArgument naming the function whose
/// parameters the structured-output compiler refuses.
absl::StatusOr<std::string> ToolCallGrammar(ToolCallFormat format,
                                            const std::vector<ToolFunction>& functions,
                                            bool parallel);

/// `gbnf` with `prefix` before every rule name (so several grammars can live in one).
std::string PrefixGbnfRules(std::string_view gbnf, std::string_view prefix);

}  // namespace pagoda
