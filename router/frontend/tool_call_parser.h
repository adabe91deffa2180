// Tool-call parsers: turn a chat model's text into OpenAI `tool_calls` for the formats models are
// trained on, complete or as a prefix of an output still being generated (for streaming, see
// tool_call_streamer.h).
//
//   hermes       Hermes / Qwen:  text <tool_call>{"name": "f", "arguments": {...}}</tool_call> ...
//   llama3_json  Llama 3.x:      [<|python_tag|>]{"name": "f", "parameters": {...}}; {...}
//                                (the output must start with the call; otherwise it is text)
//   mistral      Mistral:        text [TOOL_CALLS][{"name": "f", "arguments": {...}}, ...]
//
// Every format accepts "arguments" or "parameters" for the arguments. A call's arguments are the
// model's JSON text as written (so streamed fragments concatenate to exactly the parsed value);
// arguments given as a JSON string are its decoded text.
//
//   ASSIGN_OR_RETURN(ToolCallFormat format, ToolCallFormatFromName("hermes"));
//   ParsedToolCalls parsed = ParseToolCalls(format, output_text);
//   for (const ToolCall& call : parsed.calls) Use(call.name, call.arguments);
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace pagoda {

enum class ToolCallFormat { kHermes, kLlama3Json, kMistral };

/// "hermes", "llama3_json" or "mistral" (InvalidArgument naming the choices otherwise).
absl::StatusOr<ToolCallFormat> ToolCallFormatFromName(std::string_view name);
std::string_view ToolCallFormatName(ToolCallFormat format);
/// The format a chat template's text announces: <tool_call> (hermes), [TOOL_CALLS] (mistral),
/// <|python_tag|> or "ipython" (llama3_json); hermes when it says nothing.
ToolCallFormat DetectToolCallFormat(std::string_view chat_template_source);

struct ToolCall {
  std::string name;
  std::string arguments;  // JSON text
};

/// A parse of an output that may still grow.
struct ToolCallSnapshot {
  struct Call {
    std::optional<std::string> name;  // once the name's string is complete
    std::string arguments;            // so far: only ever grows as the output grows
    bool complete = false;
  };
  /// The text outside calls decided so far: a tail that might begin a call marker is held back
  /// until the output goes on (or ends).
  std::string content;
  std::vector<Call> calls;
  /// A call that cannot be one (not JSON, no name, junk where a call must continue).
  bool malformed = false;

  /// Where an unfinished parse stopped, when more text can only extend it in one known way, so a
  /// streamer appends the next text without parsing everything again (see ToolCallTail).
  struct Tail {
    enum class Kind {
      kNone,       // anything may change: parse again
      kContent,    // text[begin..] is content until `marker` appears (never, when it is empty)
      kArguments,  // the last call's raw JSON arguments are open from `begin` (JSON scan state)
    };
    Kind kind = Kind::kNone;
    size_t begin = 0;
    std::string_view marker;  // kContent
    int depth = 0;            // kArguments: open objects and arrays
    bool in_string = false;   // kArguments: inside a string
    bool escaped = false;     // kArguments: right after a backslash in a string
  };
  Tail tail;
};

/// Parses `text`; `finished`: the output ended, so nothing is held back and an unfinished call
/// stays incomplete.
ToolCallSnapshot ParseToolCallsPrefix(ToolCallFormat format, std::string_view text, bool finished);

/// Extends `tail` (kArguments) over `more` bytes; false when the arguments' value closes in them
/// (the snapshot then changes in more than its arguments: parse again).
bool ExtendOpenArguments(ToolCallSnapshot::Tail& tail, std::string_view more);

struct ParsedToolCalls {
  std::optional<std::string> content;  // null when only whitespace is left outside the calls
  std::vector<ToolCall> calls;
};

/// A finished output's parse. Without calls, or when a call is malformed or unfinished, there are
/// no calls and all of `text` is content (as vLLM's parsers do).
ParsedToolCalls ParseToolCalls(ToolCallFormat format, std::string_view text);

/// The longest tail of `text` that is a proper prefix of `marker` (0 when none): what streaming
/// holds back.
size_t PartialMarkerTail(std::string_view text, std::string_view marker);

/// Whether `text` has a byte other than JSON whitespace.
bool HasNonWhitespace(std::string_view text);

}  // namespace pagoda
