#include "common/chat_template/chat_template.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/chat_template/internal/jinja_ast.h"
#include "common/chat_template/internal/jinja_interpreter.h"
#include "common/chat_template/internal/jinja_value.h"
#include "common/file_util.h"
#include "common/json_util.h"
#include "common/status_macros.h"

namespace pagoda {

struct ChatTemplate::Parsed {
  jinja::Body body;
};

ChatTemplate::ChatTemplate(std::string source, std::shared_ptr<const Parsed> parsed,
                           Options options)
    : source_(std::move(source)), parsed_(std::move(parsed)), options_(std::move(options)) {}

absl::StatusOr<ChatTemplate> ChatTemplate::Parse(std::string source, Options options) {
  auto parsed = std::make_shared<Parsed>();
  ASSIGN_OR_RETURN(parsed->body, jinja::Parse(source));
  return ChatTemplate(std::move(source), std::move(parsed), std::move(options));
}

absl::StatusOr<ChatTemplate> ChatTemplate::FromModelDirectory(const std::string& dir,
                                                              Options options) {
  const std::string path = dir + "/tokenizer_config.json";
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  absl::StatusOr<nlohmann::json> parsed = ParseJson(text);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, " ", parsed.status().message()));
  }
  nlohmann::json& config = *parsed;
  if (!config.is_object()) return absl::InvalidArgumentError(path + ": not a JSON object");
  auto it = config.find("chat_template");
  if (it == config.end() || it->is_null()) {
    return absl::NotFoundError(path + " has no chat_template");
  }
  if (it->is_string()) return Parse(it->get<std::string>(), std::move(options));
  if (it->is_array()) {
    for (const nlohmann::json& entry : *it) {
      if (entry.is_object() && entry.value("name", "") == "default" && entry.contains("template") &&
          entry["template"].is_string()) {
        return Parse(entry["template"].get<std::string>(), std::move(options));
      }
    }
    return absl::NotFoundError(path + ": chat_template has no \"default\" entry");
  }
  return absl::InvalidArgumentError(path + ": chat_template must be a string or a list");
}

absl::StatusOr<std::string> ChatTemplate::Render(const nlohmann::json& messages,
                                                 bool add_generation_prompt,
                                                 const nlohmann::json& extra_context) const {
  if (!messages.is_array()) return absl::InvalidArgumentError("messages must be a JSON array");
  if (!extra_context.is_object()) {
    return absl::InvalidArgumentError("extra_context must be a JSON object");
  }
  // Client JSON this deep would only make printing and comparing it recurse without bound.
  if (jinja::NestingDepth(messages, jinja::kMaxValueDepth) > jinja::kMaxValueDepth ||
      jinja::NestingDepth(extra_context, jinja::kMaxValueDepth) > jinja::kMaxValueDepth) {
    return absl::InvalidArgumentError(
        absl::StrCat("messages nested deeper than ", jinja::kMaxValueDepth, " levels"));
  }
  nlohmann::json flat = nlohmann::json::array();
  for (const nlohmann::json& message : messages) {
    if (!message.is_object()) return absl::InvalidArgumentError("each message must be an object");
    nlohmann::json m = message;
    auto content = m.find("content");
    if (content != m.end() && content->is_array()) {
      std::string text;
      bool first = true;
      for (const nlohmann::json& part : *content) {
        if (!part.is_object() || part.value("type", "") != "text") continue;
        auto t = part.find("text");
        if (t == part.end() || !t->is_string()) {
          return absl::InvalidArgumentError("a text content part needs a string \"text\"");
        }
        if (!first) text += "\n";
        first = false;
        text += t->get<std::string>();
      }
      *content = std::move(text);
    }
    flat.push_back(std::move(m));
  }
  nlohmann::json context = extra_context;
  context["messages"] = std::move(flat);
  context["add_generation_prompt"] = add_generation_prompt;
  jinja::RenderLimits limits;
  limits.max_output_bytes = options_.max_output_bytes;
  limits.max_loop_iterations = options_.max_loop_iterations;
  limits.max_call_depth = options_.max_call_depth;
  limits.now = options_.now;
  return jinja::Render(parsed_->body, context, limits);
}

}  // namespace pagoda
