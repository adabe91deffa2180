// A Hugging Face chat template: the Jinja2 `chat_template` of tokenizer_config.json that turns
// OpenAI-style `messages` into the prompt text a chat model was trained on.
//
// The interpreter (internal/jinja_*) covers the Jinja2 subset real templates use:
// output and if/elif/else, for (with else, loop.*, tuple unpacking, inline filter), set (also
// namespace attributes and blocks), macros, break/continue, comments, whitespace control with
// transformers' trim_blocks/lstrip_blocks; Python-like expressions, filters, tests and
// string/dict methods; raise_exception, range, namespace and strftime_now.
//
//   ASSIGN_OR_RETURN(ChatTemplate tmpl, ChatTemplate::FromModelDirectory(model_dir));
//   ASSIGN_OR_RETURN(std::string prompt,
//                    tmpl.Render(messages, /*add_generation_prompt=*/true,
//                                {{"bos_token", "<s>"}, {"eos_token", "</s>"}}));
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace pagoda {

/// Limits that keep rendering safe on untrusted templates and messages.
struct ChatTemplateOptions {
  int64_t max_output_bytes = 1 << 20;     // the prompt and every intermediate value
  int64_t max_loop_iterations = 100'000;  // all loops of one render together
  int max_call_depth = 64;                // macro nesting
  std::function<absl::Time()> now;        // strftime_now's clock; null means absl::Now
};

class ChatTemplate {
 public:
  using Options = ChatTemplateOptions;

  /// Parses the template; InvalidArgument naming line/column on a syntax error.
  static absl::StatusOr<ChatTemplate> Parse(std::string source, Options options = {});
  /// Loads tokenizer_config.json's "chat_template" (a string, or a list of {name, template}
  /// where "default" is used) from a model directory; NotFound if the model has none.
  static absl::StatusOr<ChatTemplate> FromModelDirectory(const std::string& dir,
                                                         Options options = {});

  /// Renders `messages` (a JSON array of {role, content}; list contents have their text parts
  /// joined with "\n", as vLLM does), `add_generation_prompt` and `extra_context` (bos_token,
  /// eos_token, tools, ...). Every failure, raise_exception(msg) included, is InvalidArgument.
  absl::StatusOr<std::string> Render(
      const nlohmann::json& messages, bool add_generation_prompt,
      const nlohmann::json& extra_context = nlohmann::json::object()) const;

  const std::string& source() const { return source_; }

 private:
  struct Parsed;
  ChatTemplate(std::string source, std::shared_ptr<const Parsed> parsed, Options options);

  std::string source_;
  std::shared_ptr<const Parsed> parsed_;  // immutable, so copies share it
  Options options_;
};

}  // namespace pagoda
