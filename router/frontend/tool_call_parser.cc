#include "router/frontend/tool_call_parser.h"

#include <algorithm>
#include <cctype>
#include <utility>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace pagoda {
namespace {

constexpr std::string_view kHermesStart = "<tool_call>";
constexpr std::string_view kHermesEnd = "</tool_call>";
constexpr std::string_view kMistralStart = "[TOOL_CALLS]";
constexpr std::string_view kPythonTag = "<|python_tag|>";
constexpr size_t kNpos = std::string_view::npos;

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

size_t SkipSpace(std::string_view text, size_t pos) {
  while (pos < text.size() && IsSpace(text[pos])) ++pos;
  return pos;
}

// Where one JSON value starting at text[pos] ends: `end` one past it, or kNpos when the text ends
// first (or, for a bare number/literal, ends right after it and more may follow).
struct ValueScan {
  size_t end = kNpos;
  bool error = false;
  // An object or array the text ended inside: its scan state there.
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
};

// One byte of a JSON object or array: updates the open depth and string state; false when the
// byte closes the outermost value.
bool AdvanceJson(char c, int& depth, bool& in_string, bool& escaped) {
  if (in_string) {
    if (escaped) {
      escaped = false;
    } else if (c == '\\') {
      escaped = true;
    } else if (c == '"') {
      in_string = false;
    }
  } else if (c == '"') {
    in_string = true;
  } else if (c == '{' || c == '[') {
    ++depth;
  } else if (c == '}' || c == ']') {
    if (--depth == 0) return false;
  }
  return true;
}

ValueScan ScanString(std::string_view text, size_t pos) {
  for (size_t i = pos + 1; i < text.size(); ++i) {
    if (text[i] == '\\') {
      ++i;
    } else if (text[i] == '"') {
      return {.end = i + 1};
    }
  }
  return {};
}

ValueScan ScanValue(std::string_view text, size_t pos, bool finished) {
  if (pos >= text.size()) return {};
  const char first = text[pos];
  if (first == '"') return ScanString(text, pos);
  if (first == '{' || first == '[') {
    ValueScan scan;
    // The same scan ExtendOpenArguments continues.
    for (size_t i = pos; i < text.size(); ++i) {
      if (!AdvanceJson(text[i], scan.depth, scan.in_string, scan.escaped)) return {.end = i + 1};
    }
    return scan;
  }
  size_t i = pos;
  while (i < text.size() && (std::isalnum(static_cast<unsigned char>(text[i])) || text[i] == '.' ||
                             text[i] == '-' || text[i] == '+')) {
    ++i;
  }
  if (i == pos) return {.error = true};
  if (i == text.size() && !finished) return {};
  return {.end = i};
}

// One call object {"name": ..., "arguments": ...} starting at text[pos] == '{'.
struct CallScan {
  ToolCallSnapshot::Call call;
  size_t end = kNpos;  // one past '}' when complete
  bool error = false;
  ToolCallSnapshot::Tail tail;  // kArguments when the text ended inside raw arguments
};

CallScan ScanCall(std::string_view text, size_t pos, bool finished) {
  CallScan scan;
  bool has_arguments = false;
  size_t i = pos + 1;
  auto incomplete = [&] {
    scan.end = kNpos;
    return scan;
  };
  while (true) {
    i = SkipSpace(text, i);
    if (i >= text.size()) return incomplete();
    if (text[i] == '}') break;
    if (text[i] != '"') {
      scan.error = true;
      return scan;
    }
    const ValueScan key_scan = ScanString(text, i);
    if (key_scan.end == kNpos) return incomplete();
    const nlohmann::json key = nlohmann::json::parse(text.substr(i, key_scan.end - i), nullptr,
                                                     /*allow_exceptions=*/false);
    i = SkipSpace(text, key_scan.end);
    if (i >= text.size()) return incomplete();
    if (text[i] != ':' || !key.is_string()) {
      scan.error = true;
      return scan;
    }
    i = SkipSpace(text, i + 1);
    if (i >= text.size()) return incomplete();
    const ValueScan value = ScanValue(text, i, finished);
    if (value.error) {
      scan.error = true;
      return scan;
    }
    const std::string name = key.get<std::string>();
    const bool is_arguments = name == "arguments" || name == "parameters";
    if (is_arguments && text[i] != '"') {
      // Raw JSON text, as it grows.
      scan.call.arguments =
          std::string(text.substr(i, (value.end == kNpos ? text.size() : value.end) - i));
      has_arguments = true;
      if (value.end == kNpos && (text[i] == '{' || text[i] == '[')) {
        scan.tail = {.kind = ToolCallSnapshot::Tail::Kind::kArguments,
                     .begin = i,
                     .depth = value.depth,
                     .in_string = value.in_string,
                     .escaped = value.escaped};
      }
    }
    if (value.end == kNpos) return incomplete();
    const std::string_view raw = text.substr(i, value.end - i);
    if (name == "name" || (is_arguments && text[i] == '"')) {
      const nlohmann::json parsed = nlohmann::json::parse(raw, nullptr, false);
      if (!parsed.is_string()) {
        scan.error = true;
        return scan;
      }
      if (name == "name") {
        scan.call.name = parsed.get<std::string>();
      } else {
        scan.call.arguments = parsed.get<std::string>();
        has_arguments = true;
      }
    }
    i = SkipSpace(text, value.end);
    if (i >= text.size()) return incomplete();
    if (text[i] == ',') {
      ++i;
    } else if (text[i] != '}') {
      scan.error = true;
      return scan;
    }
  }
  if (!scan.call.name.has_value()) {
    scan.error = true;
    return scan;
  }
  if (!has_arguments) scan.call.arguments = "{}";
  scan.call.complete = true;
  scan.end = i + 1;
  return scan;
}

// Appends text[from, to) to the content, or everything but a tail that may start `marker` when
// the output goes on. Returns false when a marker may be starting (nothing after it is decided).
// The rest of the output is content until `marker` (kContent tail; an empty marker: for good).
bool AppendContent(std::string_view text, size_t from, bool finished, std::string_view marker,
                   ToolCallSnapshot& out) {
  std::string_view rest = text.substr(from);
  const size_t held = finished || marker.empty() ? 0 : PartialMarkerTail(rest, marker);
  out.content.append(rest.substr(0, rest.size() - held));
  out.tail = {.kind = ToolCallSnapshot::Tail::Kind::kContent, .begin = from, .marker = marker};
  return held == 0;
}

// A malformed call: what follows `from` is text after all.
void GiveUp(std::string_view text, size_t from, ToolCallSnapshot& out) {
  out.malformed = true;
  out.content.append(text.substr(from));
}

ToolCallSnapshot ParseHermes(std::string_view text, bool finished) {
  ToolCallSnapshot out;
  size_t pos = 0;
  while (pos <= text.size()) {
    const size_t start = text.find(kHermesStart, pos);
    if (start == kNpos) {
      AppendContent(text, pos, finished, kHermesStart, out);
      return out;
    }
    out.content.append(text.substr(pos, start - pos));
    size_t i = SkipSpace(text, start + kHermesStart.size());
    if (i >= text.size()) {
      if (finished) GiveUp(text, start, out);
      return out;
    }
    if (text[i] != '{') {
      GiveUp(text, start, out);
      return out;
    }
    CallScan scan = ScanCall(text, i, finished);
    if (scan.error) {
      GiveUp(text, start, out);
      return out;
    }
    out.calls.push_back(std::move(scan.call));
    if (scan.end == kNpos) {
      out.tail = scan.tail;
      return out;
    }
    i = SkipSpace(text, scan.end);
    const std::string_view tail = text.substr(i);
    if (tail.starts_with(kHermesEnd)) {
      pos = i + kHermesEnd.size();
    } else if (!finished && kHermesEnd.starts_with(tail)) {
      return out;  // the end marker may be arriving
    } else {
      pos = scan.end;  // no end marker: what follows is text again
    }
  }
  return out;
}

ToolCallSnapshot ParseLlama3(std::string_view text, bool finished) {
  ToolCallSnapshot out;
  size_t i = SkipSpace(text, 0);
  if (text.substr(i).starts_with(kPythonTag)) {
    i = SkipSpace(text, i + kPythonTag.size());
  } else if (!finished && kPythonTag.starts_with(text.substr(i))) {
    return out;  // nothing but (a prefix of) the tag so far
  }
  if (i >= text.size()) {
    if (finished) out.content = std::string(text);
    return out;
  }
  if (text[i] != '{') {
    AppendContent(text, 0, finished, /*marker=*/"", out);  // text, not a call
    return out;
  }
  while (true) {
    CallScan scan = ScanCall(text, i, finished);
    if (scan.error) {
      out.calls.clear();
      GiveUp(text, 0, out);
      return out;
    }
    out.calls.push_back(std::move(scan.call));
    if (scan.end == kNpos) {
      out.tail = scan.tail;
      return out;
    }
    i = SkipSpace(text, scan.end);
    if (i >= text.size()) return out;
    if (text[i] != ';') break;
    i = SkipSpace(text, i + 1);
    if (i >= text.size()) return out;
    if (text[i] != '{') break;
  }
  out.calls.clear();
  GiveUp(text, 0, out);
  return out;
}

ToolCallSnapshot ParseMistral(std::string_view text, bool finished) {
  ToolCallSnapshot out;
  const size_t start = text.find(kMistralStart);
  if (start == kNpos) {
    AppendContent(text, 0, finished, kMistralStart, out);
    return out;
  }
  out.content.append(text.substr(0, start));
  size_t i = SkipSpace(text, start + kMistralStart.size());
  if (i >= text.size()) {
    if (finished) GiveUp(text, start, out);
    return out;
  }
  const bool array = text[i] == '[';
  if (array) i = SkipSpace(text, i + 1);
  while (true) {
    if (i >= text.size()) {
      if (finished) GiveUp(text, start, out);
      return out;
    }
    if (text[i] != '{') break;
    CallScan scan = ScanCall(text, i, finished);
    if (scan.error) break;
    out.calls.push_back(std::move(scan.call));
    if (scan.end == kNpos) {
      out.tail = scan.tail;
      return out;
    }
    i = SkipSpace(text, scan.end);
    if (!array) {
      AppendContent(text, scan.end, finished, /*marker=*/"", out);
      return out;
    }
    if (i >= text.size()) {
      if (finished) GiveUp(text, start, out);
      return out;
    }
    if (text[i] == ']') {
      AppendContent(text, i + 1, finished, /*marker=*/"", out);
      return out;
    }
    if (text[i] != ',') break;
    i = SkipSpace(text, i + 1);
  }
  GiveUp(text, start, out);
  return out;
}

}  // namespace

absl::StatusOr<ToolCallFormat> ToolCallFormatFromName(std::string_view name) {
  if (name == "hermes") return ToolCallFormat::kHermes;
  if (name == "llama3_json") return ToolCallFormat::kLlama3Json;
  if (name == "mistral") return ToolCallFormat::kMistral;
  return absl::InvalidArgumentError(
      absl::StrCat("tool call parser '", std::string(name),
                   "' is unknown; use auto, hermes, llama3_json or mistral"));
}

std::string_view ToolCallFormatName(ToolCallFormat format) {
  switch (format) {
    case ToolCallFormat::kHermes:
      return "hermes";
    case ToolCallFormat::kLlama3Json:
      return "llama3_json";
    case ToolCallFormat::kMistral:
      return "mistral";
  }
  return "hermes";
}

ToolCallFormat DetectToolCallFormat(std::string_view source) {
  if (source.find(kHermesStart) != kNpos) return ToolCallFormat::kHermes;
  if (source.find(kMistralStart) != kNpos) return ToolCallFormat::kMistral;
  if (source.find(kPythonTag) != kNpos || source.find("ipython") != kNpos) {
    return ToolCallFormat::kLlama3Json;
  }
  return ToolCallFormat::kHermes;
}

bool HasNonWhitespace(std::string_view text) {
  for (char c : text) {
    if (!IsSpace(c)) return true;
  }
  return false;
}

ToolCallSnapshot ParseToolCallsPrefix(ToolCallFormat format, std::string_view text, bool finished) {
  switch (format) {
    case ToolCallFormat::kHermes:
      return ParseHermes(text, finished);
    case ToolCallFormat::kLlama3Json:
      return ParseLlama3(text, finished);
    case ToolCallFormat::kMistral:
      return ParseMistral(text, finished);
  }
  return ParseHermes(text, finished);
}

size_t PartialMarkerTail(std::string_view text, std::string_view marker) {
  for (size_t n = std::min(text.size(), marker.size() - 1); n > 0; --n) {
    if (text.substr(text.size() - n) == marker.substr(0, n)) return n;
  }
  return 0;
}

bool ExtendOpenArguments(ToolCallSnapshot::Tail& tail, std::string_view more) {
  for (char c : more) {
    if (!AdvanceJson(c, tail.depth, tail.in_string, tail.escaped)) return false;
  }
  return true;
}

ParsedToolCalls ParseToolCalls(ToolCallFormat format, std::string_view text) {
  ToolCallSnapshot snapshot = ParseToolCallsPrefix(format, text, /*finished=*/true);
  ParsedToolCalls parsed;
  bool ok = !snapshot.malformed;
  for (const ToolCallSnapshot::Call& call : snapshot.calls) ok = ok && call.complete;
  if (!ok || snapshot.calls.empty()) {
    if (HasNonWhitespace(text)) parsed.content = std::string(text);
    return parsed;
  }
  for (ToolCallSnapshot::Call& call : snapshot.calls) {
    parsed.calls.push_back({.name = *call.name, .arguments = std::move(call.arguments)});
  }
  if (HasNonWhitespace(snapshot.content)) parsed.content = std::move(snapshot.content);
  return parsed;
}

}  // namespace pagoda
