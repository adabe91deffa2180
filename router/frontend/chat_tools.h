// The tool-calling fields of a chat completions request: `tools` (functions with a JSON Schema
// of their parameters, checked by the structured-output compiler), `tool_choice` (auto, none,
// required or {"type": "function", "function": {"name"}}) and `parallel_tool_calls`, and the
// constraint that enforces required / named choice.
//
//   ChatTools tools;
//   RETURN_IF_ERROR(ReadChatTools(body, tools));  // InvalidArgument starting with the field
//   if (tools.Enforced()) ASSIGN_OR_RETURN(std::string gbnf, tools.Grammar(format));
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "router/frontend/tool_call_grammar.h"
#include "router/frontend/tool_call_parser.h"

namespace pagoda {

enum class ToolChoice { kNone, kAuto, kRequired, kFunction };

struct ChatTools {
  nlohmann::json tools;                 // the `tools` array for the chat template, or null
  std::vector<ToolFunction> functions;  // in `tools` order
  ToolChoice choice = ToolChoice::kNone;
  std::string function_name;  // kFunction: the named function
  bool parallel_tool_calls = true;

  /// Whether the output is parsed for calls (auto, required, a named function).
  bool Parsed() const { return choice != ToolChoice::kNone && !functions.empty(); }
  /// Whether a grammar forces the output into calls (required, a named function).
  bool Enforced() const {
    return choice == ToolChoice::kRequired || choice == ToolChoice::kFunction;
  }
  /// The GBNF that enforces the choice in `format`.
  absl::StatusOr<std::string> Grammar(ToolCallFormat format) const;
};

/// Reads tools, tool_choice and parallel_tool_calls (tool_choice defaults to auto with tools,
/// none without; required or a named function need tools, and the name must be one of them).
absl::Status ReadChatTools(const nlohmann::json& body, ChatTools& out);

}  // namespace pagoda
