// ToolCallStreamer: one streamed chat choice's text deltas in, OpenAI's streamed `tool_calls`
// deltas out. The first delta of a call carries its index, id, type, function.name and
// arguments ""; later ones the index and a fragment of the arguments. Text that may begin a call
// marker is held back until decided; content that is only whitespace is held back until more
// text comes (and, when the output made calls, dropped at the end, as the non-streamed parse
// drops it). Concatenated, the deltas equal ParseToolCalls of the whole output when that output
// is well formed.
//
// Each Push costs the length of its text, not of the output so far: where the last parse ended
// in plain content or inside a call's open JSON arguments (ToolCallSnapshot::Tail), the new text
// extends that snapshot directly; the whole output is parsed again only when the structure can
// change (a call marker or the arguments' closing bracket arrives, or the output ends), a few
// times per call.
//
//   ToolCallStreamer streamer(ToolCallFormat::kHermes, [&] { return NewCallId(); });
//   ToolCallStreamDelta delta = streamer.Push(out.text, out.finish_reason.has_value());
//   if (!delta.content.empty()) ...; for (const ToolCallDelta& call : delta.calls) ...
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "nlohmann/json.hpp"
#include "router/frontend/tool_call_parser.h"

namespace pagoda {

struct ToolCallDelta {
  int32_t index = 0;
  bool first = false;     // the call's first delta: id and name are set
  std::string id;         // "call_..." (first delta)
  std::string name;       // (first delta)
  std::string arguments;  // a fragment ("" in the first delta)
};

struct ToolCallStreamDelta {
  std::string content;
  std::vector<ToolCallDelta> calls;
  bool empty() const { return content.empty() && calls.empty(); }
};

/// The delta's `tool_calls` array as OpenAI streams it.
nlohmann::json ToolCallDeltasJson(const std::vector<ToolCallDelta>& calls);

class ToolCallStreamer {
 public:
  /// `new_id` makes a call's id ("call_...").
  ToolCallStreamer(ToolCallFormat format, std::function<std::string()> new_id);

  /// Appends a text delta; `finished`: the output ended with it (everything decided goes out).
  ToolCallStreamDelta Push(std::string_view text, bool finished);

  /// Calls started so far.
  int32_t num_calls() const { return static_cast<int32_t>(args_sent_.size()); }
  /// Whole-output parses so far (the rest of the Pushes extended the last one).
  int64_t num_parses() const { return num_parses_; }

 private:
  // Extends snapshot_ by the last `added` bytes of text_ when its tail allows; false: parse again.
  bool Extend(size_t added);
  // What snapshot_ holds that was not sent yet.
  ToolCallStreamDelta Diff(bool finished);

  const ToolCallFormat format_;
  const std::function<std::string()> new_id_;
  std::string text_;
  ToolCallSnapshot snapshot_;      // the parse of text_ (so far)
  size_t content_end_ = 0;         // kContent tail: text_'s bytes up to here are in the content
  bool content_has_text_ = false;  // HasNonWhitespace(snapshot_.content)
  int64_t num_parses_ = 0;
  size_t content_sent_ = 0;        // bytes of the snapshot's content sent
  std::vector<size_t> args_sent_;  // per started call: bytes of its arguments sent
};

}  // namespace pagoda
