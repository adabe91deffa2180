#include "router/frontend/tool_call_streamer.h"

#include <algorithm>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace pagoda {
namespace {

struct Reassembled {
  std::string content;
  std::vector<ToolCall> calls;
  std::vector<std::string> ids;
  std::vector<std::string> pushes;  // each Push's delta, flattened as FlatDelta writes it
};

// Calls `push(chunk, finished)` for `text` cut in the given chunk sizes (repeated).
void ForEachChunk(const std::string& text, const std::vector<size_t>& sizes,
                  const std::function<void(std::string_view, bool)>& push) {
  size_t pos = 0;
  for (size_t i = 0; pos < text.size() || i == 0; ++i) {
    const size_t size = std::min(sizes[i % sizes.size()], text.size() - pos);
    const bool finished = pos + size == text.size();
    push(std::string_view(text).substr(pos, size), finished);
    pos += size;
    if (finished) break;
  }
}

std::string FlatDelta(const std::string& content, const std::vector<std::string>& calls) {
  std::string flat = content.empty() ? "" : "content:" + content + "|";
  for (const std::string& call : calls) flat += call + "|";
  return flat;
}

// Streams `text` in the given chunk sizes and concatenates the deltas as a client does,
// checking the shape of every delta on the way.
Reassembled Stream(ToolCallFormat format, const std::string& text,
                   const std::vector<size_t>& sizes) {
  int next_id = 0;
  ToolCallStreamer streamer(format, [&] { return absl::StrCat("call_", next_id++); });
  Reassembled out;
  ForEachChunk(text, sizes, [&](std::string_view chunk, bool finished) {
    const ToolCallStreamDelta delta = streamer.Push(chunk, finished);
    out.content += delta.content;
    std::vector<std::string> flat_calls;
    for (const ToolCallDelta& call : delta.calls) {
      if (call.first) {
        EXPECT_EQ(call.index, static_cast<int32_t>(out.calls.size()));
        EXPECT_EQ(call.arguments, "");
        EXPECT_FALSE(call.name.empty());
        out.calls.push_back({.name = call.name});
        out.ids.push_back(call.id);
        flat_calls.push_back(absl::StrCat("start ", call.index, ":", call.name));
      } else {
        EXPECT_LT(call.index, static_cast<int32_t>(out.calls.size()));
        EXPECT_TRUE(call.id.empty());
        out.calls[call.index].arguments += call.arguments;
        flat_calls.push_back(absl::StrCat("args ", call.index, ":", call.arguments));
      }
    }
    out.pushes.push_back(FlatDelta(delta.content, flat_calls));
  });
  return out;
}

// The deltas of a streamer that parses the whole output on every Push (what ToolCallStreamer did
// before it extended its last parse), flattened as FlatDelta writes them.
std::vector<std::string> ReferenceDeltas(ToolCallFormat format, const std::string& text,
                                         const std::vector<size_t>& sizes) {
  std::vector<std::string> out;
  std::string seen;
  size_t content_sent = 0;
  std::vector<size_t> args_sent;
  ForEachChunk(text, sizes, [&](std::string_view chunk, bool finished) {
    seen.append(chunk);
    const ToolCallSnapshot snapshot = ParseToolCallsPrefix(format, seen, finished);
    std::string content;
    if ((HasNonWhitespace(snapshot.content) ||
         (finished && snapshot.calls.empty() && args_sent.empty())) &&
        snapshot.content.size() > content_sent) {
      content = snapshot.content.substr(content_sent);
      content_sent = snapshot.content.size();
    }
    std::vector<std::string> calls;
    for (size_t c = 0; c < snapshot.calls.size(); ++c) {
      if (c >= args_sent.size()) {
        if (!snapshot.calls[c].name.has_value()) break;
        calls.push_back(absl::StrCat("start ", c, ":", *snapshot.calls[c].name));
        args_sent.push_back(0);
      }
      if (snapshot.calls[c].arguments.size() > args_sent[c]) {
        calls.push_back(
            absl::StrCat("args ", c, ":", snapshot.calls[c].arguments.substr(args_sent[c])));
        args_sent[c] = snapshot.calls[c].arguments.size();
      }
    }
    out.push_back(FlatDelta(content, calls));
  });
  return out;
}

void ExpectStreamsLikeParse(ToolCallFormat format, const std::string& text) {
  const ParsedToolCalls parsed = ParseToolCalls(format, text);
  std::vector<std::vector<size_t>> chunkings = {{1}, {2}, {3}, {5}, {7}, {text.size()}};
  std::mt19937 rng(7);
  for (int i = 0; i < 20; ++i) {
    std::vector<size_t> sizes;
    for (int j = 0; j < 16; ++j) sizes.push_back(1 + rng() % 12);
    chunkings.push_back(sizes);
  }
  for (const std::vector<size_t>& sizes : chunkings) {
    const Reassembled streamed = Stream(format, text, sizes);
    // Push by Push, the same deltas as parsing the whole output every time.
    EXPECT_EQ(streamed.pushes, ReferenceDeltas(format, text, sizes)) << text;
    EXPECT_EQ(streamed.content, parsed.content.value_or("")) << text;
    ASSERT_EQ(streamed.calls.size(), parsed.calls.size()) << text;
    for (size_t c = 0; c < parsed.calls.size(); ++c) {
      EXPECT_EQ(streamed.calls[c].name, parsed.calls[c].name) << text;
      EXPECT_EQ(streamed.calls[c].arguments, parsed.calls[c].arguments) << text;
    }
  }
}

TEST(ToolCallStreamer, HermesChunkingsReassembleToTheParse) {
  ExpectStreamsLikeParse(ToolCallFormat::kHermes, "No tools needed <b>here</b> < tool");
  ExpectStreamsLikeParse(
      ToolCallFormat::kHermes,
      "Checking.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"S\\u00e3o "
      "\\\"P\\\"\", \"days\": [1, 2, {\"x\": null}]}}\n</tool_call>\n<tool_call>\n{\"name\": "
      "\"now\", \"arguments\": {}}\n</tool_call>");
  ExpectStreamsLikeParse(
      ToolCallFormat::kHermes,
      "<tool_call>{\"arguments\": {\"a\": true}, \"name\": \"late\"}</tool_call>");
  ExpectStreamsLikeParse(ToolCallFormat::kHermes,
                         "<tool_call>{\"name\": \"f\", \"arguments\": \"{\\\"a\\\": 1}\"}"
                         "</tool_call> and then text");
}

TEST(ToolCallStreamer, Llama3AndMistralChunkingsReassembleToTheParse) {
  ExpectStreamsLikeParse(
      ToolCallFormat::kLlama3Json,
      R"(<|python_tag|>{"name": "a", "parameters": {"x": 1.5e3}}; {"name": "b", "parameters": {}})");
  ExpectStreamsLikeParse(ToolCallFormat::kLlama3Json, R"({"name": "a", "parameters": {"s": "}"}})");
  ExpectStreamsLikeParse(ToolCallFormat::kLlama3Json, "Just text.");
  ExpectStreamsLikeParse(
      ToolCallFormat::kMistral,
      R"(Sure.[TOOL_CALLS][{"name": "a", "arguments": {"q": "[x]"}}, {"name": "b", "arguments": {}}])");
  ExpectStreamsLikeParse(ToolCallFormat::kMistral, "[TOOL no calls");
}

TEST(ToolCallStreamer, FirstDeltaCarriesIdNameAndEmptyArguments) {
  ToolCallStreamer streamer(ToolCallFormat::kHermes, [] { return std::string("call_x"); });
  EXPECT_FALSE(streamer.Push("<tool_call>{\"name\": \"f\"", false).calls.empty());
  const ToolCallStreamDelta delta = streamer.Push(", \"arguments\": {\"a\"", false);
  ASSERT_EQ(delta.calls.size(), 1u);
  EXPECT_FALSE(delta.calls[0].first);
  EXPECT_EQ(delta.calls[0].arguments, "{\"a\"");
  const nlohmann::json json = ToolCallDeltasJson(
      {{.index = 0, .first = true, .id = "call_x", .name = "f"}, {.index = 0, .arguments = "{}"}});
  EXPECT_EQ(json, nlohmann::json::parse(
                      R"([{"index": 0, "id": "call_x", "type": "function",
                           "function": {"name": "f", "arguments": ""}},
                          {"index": 0, "function": {"arguments": "{}"}}])"));
  EXPECT_EQ(streamer.num_calls(), 1);
}

TEST(ToolCallStreamer, ParsesTheWholeOutputOnlyWhereItsStructureChanges) {
  // Long arguments and long text, a byte per Push: parses grow with the calls, not the bytes.
  const std::string arguments = "{\"list\": [" + std::string(200, '[') + std::string(200, ']') +
                                "], \"s\": \"" + std::string(3000, 'y') + "\\\"}\"}";
  const std::string text = "Let me look that up. " + std::string(3000, 'z') +
                           " <tool_call>{\"name\": \"f\", \"arguments\": " + arguments +
                           "}</tool_call>\n" + std::string(2000, 'w');
  for (ToolCallFormat format :
       {ToolCallFormat::kHermes, ToolCallFormat::kMistral, ToolCallFormat::kLlama3Json}) {
    ToolCallStreamer streamer(format, [] { return std::string("id"); });
    std::string content, args;
    for (size_t i = 0; i < text.size(); ++i) {
      const ToolCallStreamDelta delta = streamer.Push(text.substr(i, 1), i + 1 == text.size());
      content += delta.content;
      for (const ToolCallDelta& call : delta.calls) args += call.arguments;
    }
    const ParsedToolCalls parsed = ParseToolCalls(format, text);
    EXPECT_EQ(content, parsed.content.value_or(""));
    if (format == ToolCallFormat::kHermes) {
      ASSERT_EQ(parsed.calls.size(), 1u);
      EXPECT_EQ(args, arguments);
    }
    EXPECT_LT(streamer.num_parses(), 100) << ToolCallFormatName(format);
  }
  ExpectStreamsLikeParse(ToolCallFormat::kHermes, text);
}

TEST(ToolCallStreamer, HoldsBackAPossibleMarker) {
  ToolCallStreamer streamer(ToolCallFormat::kHermes, [] { return std::string("id"); });
  EXPECT_EQ(streamer.Push("Hi <tool", false).content, "Hi ");
  EXPECT_EQ(streamer.Push("s are fun", false).content, "<tools are fun");
}

}  // namespace
}  // namespace pagoda
