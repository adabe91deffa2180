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
  const ToolCallSnapshot snapshot = ParseToolCallsPrefix(format_, text_, finished);
  ToolCallStreamDelta delta;
  // Whitespace alone waits: the non-streamed parse drops it when calls were made.
  const bool send_content = HasNonWhitespace(snapshot.content) ||
                            (finished && snapshot.calls.empty() && args_sent_.empty());
  if (send_content && snapshot.content.size() > content_sent_) {
    delta.content = snapshot.content.substr(content_sent_);
    content_sent_ = snapshot.content.size();
  }
  for (size_t i = 0; i < snapshot.calls.size(); ++i) {
    const ToolCallSnapshot::Call& call = snapshot.calls[i];
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
