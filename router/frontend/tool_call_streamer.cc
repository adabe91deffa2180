#include "router/frontend/tool_call_streamer.h"

#include <algorithm>
#include <utility>

namespace pagoda {

nlohmann::json ToolCallDeltasJson(const std::vector<ToolCallDelta>& calls) {
  nlohmann::json out = nlohmann::json::array();
  for (const ToolCallDelta& call : calls) {
    if (call.first) {
      out.push_back({{"index", call.index},
                     {"id", call.id},
                     {"type", "function"},
                     {"function", {{"name", call.name}, {"arguments", call.arguments}}}});
    } else {
      out.push_back({{"index", call.index}, {"function", {{"arguments", call.arguments}}}});
    }
  }
  return out;
}

ToolCallStreamer::ToolCallStreamer(ToolCallFormat format, std::function<std::string()> new_id)
    : format_(format), new_id_(std::move(new_id)) {}

ToolCallStreamDelta ToolCallStreamer::Push(std::string_view text, bool finished) {
  text_.append(text);
  if (finished || !Extend(text.size())) {
    snapshot_ = ParseToolCallsPrefix(format_, text_, finished);
    ++num_parses_;
    content_has_text_ = HasNonWhitespace(snapshot_.content);
    const ToolCallSnapshot::Tail& tail = snapshot_.tail;
    if (tail.kind == ToolCallSnapshot::Tail::Kind::kContent) {
      const size_t held =
          finished || tail.marker.empty()
              ? 0
              : PartialMarkerTail(std::string_view(text_).substr(tail.begin), tail.marker);
      content_end_ = text_.size() - held;
    }
  }
  return Diff(finished);
}

bool ToolCallStreamer::Extend(size_t added) {
  ToolCallSnapshot::Tail& tail = snapshot_.tail;
  const std::string_view text = text_;
  const std::string_view more = text.substr(text.size() - added);
  switch (tail.kind) {
    case ToolCallSnapshot::Tail::Kind::kNone:
      return false;
    case ToolCallSnapshot::Tail::Kind::kArguments:
      if (snapshot_.calls.empty() || !ExtendOpenArguments(tail, more)) return false;
      snapshot_.calls.back().arguments.append(more);
      return true;
    case ToolCallSnapshot::Tail::Kind::kContent: {
      size_t held = 0;
      if (!tail.marker.empty()) {
        // A marker may start in the bytes held back before this text, never earlier.
        const size_t old_size = text.size() - added;
        const size_t from = std::max(tail.begin, old_size - std::min(old_size, tail.marker.size()));
        if (text.find(tail.marker, from) != std::string_view::npos) return false;
        held = PartialMarkerTail(text.substr(tail.begin), tail.marker);
      }
      const size_t end = text.size() - held;
      const std::string_view grown = text.substr(content_end_, end - content_end_);
      snapshot_.content.append(grown);
      content_has_text_ = content_has_text_ || HasNonWhitespace(grown);
      content_end_ = end;
      return true;
    }
  }
  return false;
}

ToolCallStreamDelta ToolCallStreamer::Diff(bool finished) {
  ToolCallStreamDelta delta;
  // Whitespace alone waits: the non-streamed parse drops it when calls were made.
  const bool send_content =
      content_has_text_ || (finished && snapshot_.calls.empty() && args_sent_.empty());
  if (send_content && snapshot_.content.size() > content_sent_) {
    delta.content = snapshot_.content.substr(content_sent_);
    content_sent_ = snapshot_.content.size();
  }
  for (size_t i = 0; i < snapshot_.calls.size(); ++i) {
    const ToolCallSnapshot::Call& call = snapshot_.calls[i];
    const int32_t index = static_cast<int32_t>(i);
    if (i >= args_sent_.size()) {
      if (!call.name.has_value()) break;  // a call goes out once its name is known
      delta.calls.push_back(
          {.index = index, .first = true, .id = new_id_(), .name = *call.name, .arguments = ""});
      args_sent_.push_back(0);
    }
    if (call.arguments.size() > args_sent_[i]) {
      delta.calls.push_back({.index = index, .arguments = call.arguments.substr(args_sent_[i])});
      args_sent_[i] = call.arguments.size();
    }
  }
  return delta;
}

}  // namespace pagoda
