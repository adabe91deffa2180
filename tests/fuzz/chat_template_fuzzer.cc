// A hostile chat template (tokenizer_config.json's or a GGUF's chat_template): parse, then render
// a fixed conversation with tools under small limits, so deep nesting, huge loops and recursion
// must end in a clear error, not a hang, a stack overflow or a crash.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/chat_template/chat_template.h"
#include "nlohmann/json.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const nlohmann::json* messages = new nlohmann::json(nlohmann::json::parse(R"([
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "Hi <|im_start|> {{ 1 }}"},
    {"role": "assistant", "content": "Hello", "tool_calls": [
      {"type": "function", "function": {"name": "f", "arguments": {"x": [1, 2.5, null]}}}]},
    {"role": "tool", "content": "42"},
    {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
  ])"));
  static const nlohmann::json* context = new nlohmann::json(nlohmann::json::parse(R"({
    "bos_token": "<s>", "eos_token": "</s>",
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
  })"));
  pagoda::ChatTemplateOptions options{
      .max_output_bytes = 1 << 16, .max_loop_iterations = 20'000, .max_call_depth = 32};
  absl::StatusOr<pagoda::ChatTemplate> tmpl =
      pagoda::ChatTemplate::Parse(std::string(reinterpret_cast<const char*>(data), size), options);
  if (!tmpl.ok()) return 0;
  (void)tmpl->Render(*messages, /*add_generation_prompt=*/true, *context);
  return 0;
}
