#include "router/frontend/chat_tools.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "structured/json_schema_grammar.h"

namespace pagoda {
namespace {

using nlohmann::json;

absl::Status Invalid(const std::string& field, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

// OpenAI's rule for function names.
bool ValidFunctionName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

absl::Status ReadTools(const json& tools, ChatTools& out) {
  if (!tools.is_array()) return Invalid("tools", "must be an array of {type, function}");
  for (const json& tool : tools) {
    if (!tool.is_object() || tool.value("type", json()) != "function") {
      return Invalid("tools", "each tool must be {\"type\": \"function\", \"function\": {...}}");
    }
    auto function = tool.find("function");
    if (function == tool.end() || !function->is_object()) {
      return Invalid("tools", "each tool needs a \"function\" object");
    }
    auto name = function->find("name");
    if (name == function->end() || !name->is_string() ||
        !ValidFunctionName(name->get<std::string>())) {
      return Invalid("tools", "function.name must be 1 to 64 characters of a-z, A-Z, 0-9, _ and -");
    }
    ToolFunction parsed{.name = name->get<std::string>()};
    for (const ToolFunction& seen : out.functions) {
      if (seen.name == parsed.name) {
        return Invalid("tools", absl::StrCat("function '", parsed.name, "' is defined twice"));
      }
    }
    if (auto description = function->find("description");
        description != function->end() && !description->is_null() && !description->is_string()) {
      return Invalid("tools",
                     absl::StrCat("function '", parsed.name, "' description must be a string"));
    }
    if (auto parameters = function->find("parameters");
        parameters != function->end() && !parameters->is_null()) {
      if (!parameters->is_object()) {
        return Invalid("tools", absl::StrCat("function '", parsed.name,
                                             "' parameters must be a JSON Schema object"));
      }
      // The compiler's verdict now, so a bad schema is a 400 whatever tool_choice says.
      if (absl::StatusOr<std::string> gbnf = structured::JsonSchemaToGbnf(parameters->dump());
          !gbnf.ok()) {
        return Invalid("tools", absl::StrCat("function '", parsed.name,
                                             "' parameters: ", gbnf.status().message()));
      }
      parsed.parameters = *parameters;
    }
    out.functions.push_back(std::move(parsed));
  }
  out.tools = tools;
  return absl::OkStatus();
}

absl::Status ReadToolChoice(const json& choice, ChatTools& out) {
  if (choice.is_string()) {
    const std::string value = choice.get<std::string>();
    if (value == "none") {
      out.choice = ToolChoice::kNone;
    } else if (value == "auto") {
      out.choice = ToolChoice::kAuto;
    } else if (value == "required") {
      out.choice = ToolChoice::kRequired;
    } else {
      return Invalid("tool_choice", absl::StrCat("must be none, auto, required or ",
                                                 "{\"type\": \"function\", \"function\": ",
                                                 "{\"name\": ...}}, got \"", value, "\""));
    }
  } else if (choice.is_object() && choice.value("type", json()) == "function" &&
             choice.contains("function") && choice["function"].is_object() &&
             choice["function"].value("name", json()).is_string()) {
    out.choice = ToolChoice::kFunction;
    out.function_name = choice["function"]["name"].get<std::string>();
  } else {
    return Invalid("tool_choice",
                   "must be none, auto, required or {\"type\": \"function\", \"function\": "
                   "{\"name\": ...}}");
  }
  if (out.Enforced() && out.functions.empty()) {
    return Invalid("tool_choice", "required or a named function needs tools");
  }
  if (out.choice == ToolChoice::kFunction) {
    bool found = false;
    for (const ToolFunction& function : out.functions)
      found = found || function.name == out.function_name;
    if (!found) {
      return Invalid("tool_choice",
                     absl::StrCat("function '", out.function_name, "' is not one of the tools"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> ChatTools::Grammar(ToolCallFormat format) const {
  if (choice == ToolChoice::kFunction) {
    for (const ToolFunction& function : functions) {
      if (function.name == function_name) {
        return ToolCallGrammar(format, {function}, /*parallel=*/false);
      }
    }
  }
  return ToolCallGrammar(format, functions, parallel_tool_calls);
}

absl::Status ReadChatTools(const json& body, ChatTools& out) {
  if (auto it = body.find("tools"); it != body.end() && !it->is_null()) {
    RETURN_IF_ERROR(ReadTools(*it, out));
  }
  out.choice = out.functions.empty() ? ToolChoice::kNone : ToolChoice::kAuto;
  if (auto it = body.find("tool_choice"); it != body.end() && !it->is_null()) {
    RETURN_IF_ERROR(ReadToolChoice(*it, out));
  }
  if (auto it = body.find("parallel_tool_calls"); it != body.end() && !it->is_null()) {
    if (!it->is_boolean()) {
      return Invalid("parallel_tool_calls",
                     absl::StrCat("must be a boolean, got JSON ", it->type_name()));
    }
    out.parallel_tool_calls = it->get<bool>();
  }
  return absl::OkStatus();
}

}  // namespace pagoda
