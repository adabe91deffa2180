#include "router/frontend/tool_call_grammar.h"

#include <cctype>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "structured/gbnf_parser.h"
#include "structured/json_schema_grammar.h"

namespace pagoda {
namespace {

bool IsNameChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
}

struct Shape {
  std::string open;        // before the calls
  std::string call_open;   // before {"name": ...
  std::string args_key;    // "arguments" or "parameters"
  std::string call_close;  // after the call's closing brace
  std::string separator;   // between calls
  std::string close;       // after the calls
};

Shape ShapeOf(ToolCallFormat format) {
  switch (format) {
    case ToolCallFormat::kHermes:
      return {.call_open = "<tool_call>\n",
              .args_key = "arguments",
              .call_close = "\n</tool_call>",
              .separator = "\n"};
    case ToolCallFormat::kLlama3Json:
      return {.args_key = "parameters", .separator = "; "};
    case ToolCallFormat::kMistral:
      return {.open = "[TOOL_CALLS][", .args_key = "arguments", .separator = ", ", .close = "]"};
  }
  return ShapeOf(ToolCallFormat::kHermes);
}

}  // namespace

std::string PrefixGbnfRules(std::string_view gbnf, std::string_view prefix) {
  std::string out;
  out.reserve(gbnf.size() * 2);
  size_t i = 0;
  while (i < gbnf.size()) {
    const char c = gbnf[i];
    if (c == '"' || c == '[') {  // a literal or a class: copied as it is, escapes included
      const char close = c == '"' ? '"' : ']';
      size_t j = i + 1;
      while (j < gbnf.size() && gbnf[j] != close) j += gbnf[j] == '\\' ? 2 : 1;
      j = std::min(j + 1, gbnf.size());
      out.append(gbnf.substr(i, j - i));
      i = j;
    } else if (c == '{') {  // a repetition count
      const size_t j = std::min(gbnf.find('}', i), gbnf.size() - 1) + 1;
      out.append(gbnf.substr(i, j - i));
      i = j;
    } else if (c == '#') {
      const size_t j = std::min(gbnf.find('\n', i), gbnf.size());
      out.append(gbnf.substr(i, j - i));
      i = j;
    } else if (IsNameChar(c)) {
      size_t j = i;
      while (j < gbnf.size() && IsNameChar(gbnf[j])) ++j;
      out.append(prefix).append(gbnf.substr(i, j - i));
      i = j;
    } else {
      out.push_back(c);
      ++i;
    }
  }
  return out;
}

absl::StatusOr<std::string> ToolCallGrammar(ToolCallFormat format,
                                            const std::vector<ToolFunction>& functions,
                                            bool parallel) {
  if (functions.empty()) return absl::InvalidArgumentError("tools: no function to call");
  const Shape shape = ShapeOf(format);
  std::string rules;
  std::vector<std::string> alternatives;
  for (size_t i = 0; i < functions.size(); ++i) {
    const ToolFunction& function = functions[i];
    const nlohmann::json parameters =
        function.parameters.is_null() ? nlohmann::json{{"type", "object"}} : function.parameters;
    // Compact JSON: whitespace would only spend tokens (and a small model loops in it).
    absl::StatusOr<std::string> args =
        structured::JsonSchemaToGbnf(parameters.dump(), {.max_whitespace = 0});
    if (!args.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("tools: function '", function.name,
                                                     "' parameters: ", args.status().message()));
    }
    const std::string prefix = absl::StrCat("f", i, "-");
    absl::StrAppend(&rules, PrefixGbnfRules(*args, prefix));
    const std::string head = absl::StrCat("{\"name\": ", nlohmann::json(function.name).dump(),
                                          ", \"", shape.args_key, "\": ");
    alternatives.push_back(absl::StrCat(structured::GbnfLiteral(head), " ", prefix, "root \"}\""));
  }
  auto literal = [](const std::string& text) {
    return text.empty() ? std::string() : absl::StrCat(structured::GbnfLiteral(text), " ");
  };
  const std::string call =
      absl::StrCat(literal(shape.call_open), "(", absl::StrJoin(alternatives, " | "), ") ",
                   literal(shape.call_close));
  std::string root = absl::StrCat("root ::= ", literal(shape.open), "call ");
  if (parallel) {
    absl::StrAppend(&root, "(", literal(shape.separator), "call){0,", kMaxParallelToolCalls - 1,
                    "} ");
  }
  absl::StrAppend(&root, literal(shape.close), "\ncall ::= ", call, "\n");
  return absl::StrCat(root, rules);
}

}  // namespace pagoda
