// Filters, tests, string/dict methods and Python-style formatting for the Jinja interpreter.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/chat_template/internal/jinja_interpreter.h"
#include "common/chat_template/internal/jinja_value.h"
#include "common/status_macros.h"

namespace pagoda::jinja {
namespace {

using json = nlohmann::json;

absl::Status Error(const std::string& message) { return absl::InvalidArgumentError(message); }

std::string FormatFloat(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buf[40];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, d);
    if (std::strtod(buf, nullptr) == d) break;
  }
  std::string s = buf;
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

void AppendPyRepr(const json& v, std::string& out);

void AppendPyStringRepr(const std::string& s, std::string& out) {
  char quote = s.find('\'') != std::string::npos && s.find('"') == std::string::npos ? '"' : '\'';
  out += quote;
  for (char c : s) {
    if (c == quote || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else {
      out += c;
    }
  }
  out += quote;
}

void AppendPyRepr(const json& v, std::string& out) {
  if (v.is_string()) {
    AppendPyStringRepr(v.get_ref<const std::string&>(), out);
  } else if (v.is_array()) {
    out += '[';
    for (size_t i = 0; i < v.size(); ++i) {
      if (i) out += ", ";
      AppendPyRepr(v[i], out);
    }
    out += ']';
  } else if (v.is_object()) {
    out += '{';
    bool first = true;
    for (const auto& [key, value] : v.items()) {
      if (!first) out += ", ";
      first = false;
      AppendPyStringRepr(key, out);
      out += ": ";
      AppendPyRepr(value, out);
    }
    out += '}';
  } else {
    out += PyStr(v);
  }
}

void AppendJsonString(const std::string& s, std::string& out) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

void AppendJson(const json& v, int indent, int level, std::string& out) {
  auto newline = [&](int lvl) {
    if (indent < 0) return;
    out += '\n';
    out.append(static_cast<size_t>(indent) * lvl, ' ');
  };
  const char* item_sep = indent < 0 ? ", " : ",";
  if (v.is_array() || v.is_object()) {
    bool is_array = v.is_array();
    if (v.empty()) {
      out += is_array ? "[]" : "{}";
      return;
    }
    out += is_array ? '[' : '{';
    bool first = true;
    for (const auto& [key, value] : v.items()) {
      if (!first) out += item_sep;
      first = false;
      newline(level + 1);
      if (!is_array) {
        AppendJsonString(key, out);
        out += ": ";
      }
      AppendJson(value, indent, level + 1, out);
    }
    newline(level);
    out += is_array ? ']' : '}';
  } else if (v.is_string()) {
    AppendJsonString(v.get_ref<const std::string&>(), out);
  } else if (v.is_number_float()) {
    double d = v.get<double>();
    out += std::isnan(d)   ? "NaN"
           : std::isinf(d) ? (d > 0 ? "Infinity" : "-Infinity")
                           : FormatFloat(d);
  } else {
    out += v.dump();  // integers, true/false/null
  }
}

// Byte offsets of each UTF-8 code point start, plus the end.
std::vector<size_t> CodePointOffsets(const std::string& s) {
  std::vector<size_t> offsets;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) offsets.push_back(i);
  }
  offsets.push_back(s.size());
  return offsets;
}

bool IsSpace(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

std::string Strip(const std::string& s, bool left, bool right, const Value* chars) {
  std::string set = chars && chars->is_data() && chars->data.is_string()
                        ? chars->data.get<std::string>()
                        : std::string();
  auto strip_char = [&](char c) { return set.empty() ? IsSpace(c) : set.find(c) != set.npos; };
  size_t b = 0, e = s.size();
  while (left && b < e && strip_char(s[b])) ++b;
  while (right && e > b && strip_char(s[e - 1])) --e;
  return s.substr(b, e - b);
}

std::string Title(const std::string& s) {
  std::string out = s;
  bool prev_alpha = false;
  for (char& c : out) {
    bool alpha = std::isalpha(static_cast<unsigned char>(c)) != 0;
    if (alpha) c = prev_alpha ? std::tolower(c) : std::toupper(c);
    prev_alpha = alpha;
  }
  return out;
}

absl::StatusOr<std::string> Replace(const std::string& s, const std::string& from,
                                    const std::string& to, int64_t max_bytes) {
  if (from.empty()) return Error("replace() with an empty pattern is not supported");
  std::string out;
  size_t pos = 0;
  while (true) {
    size_t hit = s.find(from, pos);
    out.append(s, pos, hit == std::string::npos ? std::string::npos : hit - pos);
    if (static_cast<int64_t>(out.size()) > max_bytes) return Error("string too long");
    if (hit == std::string::npos) return out;
    out += to;
    pos = hit + from.size();
  }
}

const std::string& StringArg(const Value* v, const std::string& fallback) {
  return v && v->is_data() && v->data.is_string() ? v->data.get_ref<const std::string&>()
                                                  : fallback;
}

absl::StatusOr<const json*> Attribute(const json& item, const std::string& path) {
  const json* cur = &item;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t dot = path.find('.', pos);
    std::string key = path.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    if (!cur->is_object() || !cur->contains(key)) return nullptr;
    cur = &(*cur)[key];
    if (dot == std::string::npos) break;
    pos = dot + 1;
  }
  return cur;
}

absl::StatusOr<Value> SelectOrReject(const std::string& name, const Value& input,
                                     const CallArgs& args) {
  bool by_attr = name == "selectattr" || name == "rejectattr";
  bool keep_if = name == "select" || name == "selectattr";
  if (!input.is_data() || !input.data.is_array()) {
    if (input.is_undefined()) return Value::Data(json::array());
    return Error(absl::StrCat(name, " expects a list"));
  }
  size_t first_test_arg = by_attr ? 1 : 0;
  std::string attr;
  if (by_attr) {
    if (args.args.empty() || !args.args[0].data.is_string()) {
      return Error(absl::StrCat(name, " needs an attribute name"));
    }
    attr = args.args[0].data.get<std::string>();
  }
  std::string test;
  CallArgs test_args;
  if (args.args.size() > first_test_arg) {
    test = ToStr(args.args[first_test_arg]);
    test_args.args.assign(args.args.begin() + first_test_arg + 1, args.args.end());
  }
  json out = json::array();
  for (const json& item : input.data) {
    Value subject = Value::Undefined(attr);
    if (by_attr) {
      ASSIGN_OR_RETURN(const json* found, Attribute(item, attr));
      if (found) subject = Value::Data(*found);
    } else {
      subject = Value::Data(item);
    }
    bool passed;
    if (test.empty()) {
      passed = Truthy(subject);
    } else {
      ASSIGN_OR_RETURN(passed, ApplyTest(test, subject, test_args));
    }
    if (passed == keep_if) out.push_back(item);
  }
  return Value::Data(std::move(out));
}

json Items(const json& v) {
  json out = json::array();
  if (v.is_object()) {
    for (const auto& [key, value] : v.items()) out.push_back(json::array({key, value}));
  }
  return out;
}

}  // namespace

std::string PyStr(const json& v) {
  switch (v.type()) {
    case json::value_t::string:
      return v.get<std::string>();
    case json::value_t::null:
      return "None";
    case json::value_t::boolean:
      return v.get<bool>() ? "True" : "False";
    case json::value_t::number_float:
      return FormatFloat(v.get<double>());
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return v.dump();
    default: {
      std::string out;
      AppendPyRepr(v, out);
      return out;
    }
  }
}

std::string ToJson(const json& value, int indent) {
  std::string out;
  AppendJson(value, indent, 0, out);
  return out;
}

bool Truthy(const Value& v) {
  switch (v.kind) {
    case Value::Kind::kUndefined:
      return false;
    case Value::Kind::kData:
      break;
    default:
      return true;
  }
  const json& d = v.data;
  if (d.is_null()) return false;
  if (d.is_boolean()) return d.get<bool>();
  if (d.is_number()) return d.get<double>() != 0;
  if (d.is_string()) return !d.get_ref<const std::string&>().empty();
  if (d.is_array() || d.is_object()) return !d.empty();
  return true;
}

std::string ToStr(const Value& v) {
  switch (v.kind) {
    case Value::Kind::kUndefined:
      return "";
    case Value::Kind::kData:
      return PyStr(v.data);
    case Value::Kind::kNamespace:
      return "<Namespace>";
    default:
      return "<function>";
  }
}

json ToData(const Value& v) {
  if (v.kind == Value::Kind::kData) return v.data;
  if (v.kind == Value::Kind::kNamespace) return *v.ns;
  return nullptr;
}

int NestingDepth(const json& v, int limit) {
  if (!v.is_array() && !v.is_object()) return 0;
  if (limit <= 0) return 1;
  int deepest = 0;
  for (const json& child : v) deepest = std::max(deepest, NestingDepth(child, limit - 1));
  return deepest + 1;
}

int64_t ApproxBytes(const json& v, int64_t budget) {
  int64_t bytes = 16;
  if (v.is_string()) return bytes + static_cast<int64_t>(v.get_ref<const std::string&>().size());
  if (v.is_object()) {
    for (const auto& [key, value] : v.items()) {
      if (bytes > budget) break;
      bytes += static_cast<int64_t>(key.size()) + ApproxBytes(value, budget - bytes);
    }
  } else if (v.is_array()) {
    for (const json& child : v) {
      if (bytes > budget) break;
      bytes += ApproxBytes(child, budget - bytes);
    }
  }
  return bytes;
}

int64_t Length(const json& v) {
  if (v.is_string()) return static_cast<int64_t>(CodePointOffsets(v.get<std::string>()).size()) - 1;
  if (v.is_array() || v.is_object()) return static_cast<int64_t>(v.size());
  return -1;
}

absl::StatusOr<Value> Slice(const Value& v, std::optional<int64_t> start,
                            std::optional<int64_t> stop, std::optional<int64_t> step_opt) {
  if (!v.is_data() || !(v.data.is_string() || v.data.is_array())) {
    return Error("only strings and lists can be sliced");
  }
  int64_t step = step_opt.value_or(1);
  if (step == 0) return Error("slice step cannot be zero");
  int64_t n = Length(v.data);
  step = std::clamp<int64_t>(step, -(n + 1), n + 1);  // larger steps pick the same items
  auto clamp = [&](std::optional<int64_t> i, int64_t dflt) {
    if (!i) return dflt;
    int64_t x = *i < 0 ? *i + n : *i;
    return step > 0 ? std::clamp<int64_t>(x, 0, n) : std::clamp<int64_t>(x, -1, n - 1);
  };
  int64_t b = clamp(start, step > 0 ? 0 : n - 1);
  int64_t e = clamp(stop, step > 0 ? n : -1);
  std::vector<int64_t> picks;
  for (int64_t i = b; step > 0 ? i < e : i > e; i += step) picks.push_back(i);
  if (v.data.is_array()) {
    json out = json::array();
    for (int64_t i : picks) out.push_back(v.data[i]);
    return Value::Data(std::move(out));
  }
  const std::string& s = v.data.get_ref<const std::string&>();
  std::vector<size_t> offsets = CodePointOffsets(s);
  std::string out;
  for (int64_t i : picks) out.append(s, offsets[i], offsets[i + 1] - offsets[i]);
  return Value::Data(std::move(out));
}

absl::StatusOr<bool> ApplyTest(const std::string& name, const Value& input, const CallArgs& args) {
  const json& d = input.data;
  bool data = input.is_data();
  if (name == "defined") return !input.is_undefined();
  if (name == "undefined") return input.is_undefined();
  if (name == "none") return data && d.is_null();
  if (name == "string") return data && d.is_string();
  if (name == "mapping") return (data && d.is_object()) || input.kind == Value::Kind::kNamespace;
  if (name == "iterable") return data && (d.is_array() || d.is_object() || d.is_string());
  if (name == "sequence") return data && (d.is_array() || d.is_object() || d.is_string());
  if (name == "number") return data && d.is_number();
  if (name == "integer") return data && d.is_number_integer();
  if (name == "float") return data && d.is_number_float();
  if (name == "boolean") return data && d.is_boolean();
  if (name == "true") return data && d.is_boolean() && d.get<bool>();
  if (name == "false") return data && d.is_boolean() && !d.get<bool>();
  if (name == "callable") {
    return input.kind == Value::Kind::kMacro || input.kind == Value::Kind::kBuiltin;
  }
  if (name == "odd" || name == "even") {
    if (!data || !d.is_number_integer()) return Error(absl::StrCat("'", name, "' needs an int"));
    return (d.get<int64_t>() % 2 != 0) == (name == "odd");
  }
  const Value* other = args.Get("value", 0);
  if (name == "equalto" || name == "eq" || name == "==" || name == "sameas") {
    return other && ToData(*other) == ToData(input) && !input.is_undefined();
  }
  if (name == "ne" || name == "!=") return !(other && ToData(*other) == ToData(input));
  if (name == "in") {
    if (!other || !other->is_data()) return false;
    const json& c = other->data;
    if (c.is_array()) return std::find(c.begin(), c.end(), d) != c.end();
    if (c.is_object()) return d.is_string() && c.contains(d.get<std::string>());
    if (c.is_string())
      return d.is_string() && c.get<std::string>().find(d.get<std::string>()) != std::string::npos;
    return false;
  }
  return Error(absl::StrCat("unknown test '", name, "'"));
}

absl::StatusOr<Value> ApplyFilter(const std::string& name, const Value& input, const CallArgs& args,
                                  int64_t max_bytes) {
  const json& d = input.data;
  const std::string empty;
  if (name == "default" || name == "d") {
    const Value* fallback = args.Get("default_value", 0);
    const Value* boolean = args.Get("boolean", 1);
    bool use = input.is_undefined() || (boolean && Truthy(*boolean) && !Truthy(input));
    if (use) return fallback ? *fallback : Value::Data("");
    return input;
  }
  if (name == "string") return Value::Data(ToStr(input));
  if (name == "safe" || name == "e" || name == "escape") return input;  // autoescape is off
  if (name == "tojson") {
    const Value* indent = args.Get("indent", 0);
    int n = indent && indent->is_data() && indent->data.is_number_integer()
                ? std::clamp(indent->data.get<int>(), 0, 64)
                : -1;
    std::string out = ToJson(ToData(input), n);
    if (static_cast<int64_t>(out.size()) > max_bytes) return Error("tojson output too long");
    return Value::Data(std::move(out));
  }
  if (name == "length" || name == "count") {
    int64_t n = input.is_undefined() ? 0 : Length(d);
    if (n < 0) return Error(absl::StrCat("object of type ", d.type_name(), " has no length"));
    return Value::Data(n);
  }
  if (name == "list") {
    if (input.is_data() && d.is_array()) return input;
    if (input.is_data() && d.is_object()) {
      json keys = json::array();
      for (const auto& [key, value] : d.items()) keys.push_back(key);
      return Value::Data(std::move(keys));
    }
    if (input.is_data() && d.is_string()) {
      json chars = json::array();
      std::vector<size_t> offsets = CodePointOffsets(d.get<std::string>());
      for (size_t i = 0; i + 1 < offsets.size(); ++i) {
        chars.push_back(d.get<std::string>().substr(offsets[i], offsets[i + 1] - offsets[i]));
      }
      return Value::Data(std::move(chars));
    }
    return Error("list filter needs a list, dict or string");
  }
  if (name == "items") {
    if (input.is_undefined()) return Value::Data(json::array());
    if (!d.is_object()) return Error("items filter needs a mapping");
    return Value::Data(Items(d));
  }
  if (name == "int") {
    const Value* fallback = args.Get("default", 0);
    int64_t dflt = fallback && fallback->data.is_number() ? fallback->data.get<int64_t>() : 0;
    if (d.is_number_integer()) return input;
    if (d.is_number()) {
      double x = d.get<double>();
      if (!(std::fabs(x) < 9.2e18)) return Value::Data(dflt);
      return Value::Data(static_cast<int64_t>(x));
    }
    if (d.is_boolean()) return Value::Data(d.get<bool>() ? 1 : 0);
    if (d.is_string()) {
      const std::string& s = d.get_ref<const std::string&>();
      char* end = nullptr;
      long long v = std::strtoll(s.c_str(), &end, 10);
      return Value::Data(end != s.c_str() && *end == '\0' ? static_cast<int64_t>(v) : dflt);
    }
    return Value::Data(dflt);
  }
  if (name == "float") {
    if (d.is_number()) return Value::Data(d.get<double>());
    if (d.is_string()) return Value::Data(std::strtod(d.get<std::string>().c_str(), nullptr));
    return Value::Data(0.0);
  }
  if (name == "abs") {
    if (d.is_number_integer()) {
      int64_t x = d.get<int64_t>();
      if (x == INT64_MIN) return Error("integer overflow in abs");
      return Value::Data(x < 0 ? -x : x);
    }
    if (d.is_number()) return Value::Data(std::fabs(d.get<double>()));
    return Error("abs needs a number");
  }
  if (name == "first" || name == "last") {
    if (!input.is_data() || Length(d) < 0 || d.is_object()) {
      return Error(absl::StrCat(name, " needs a list or string"));
    }
    if (Length(d) == 0) return Value::Undefined(name);
    int64_t i = name == "first" ? 0 : Length(d) - 1;
    return Slice(input, i, i + 1, 1).value().data.is_array() ? Value::Data(d[i])
                                                             : Slice(input, i, i + 1, 1);
  }
  if (name == "reverse") {
    if (!input.is_data() || !(d.is_array() || d.is_string())) return Error("cannot reverse");
    return Slice(input, std::nullopt, std::nullopt, -1);
  }
  if (name == "join") {
    if (input.is_undefined()) return Value::Data("");
    if (!d.is_array()) return Error("join needs a list");
    const std::string& sep = StringArg(args.Get("d", 0), empty);
    const Value* attr = args.Get("attribute", 1);
    std::string out;
    for (size_t i = 0; i < d.size(); ++i) {
      if (i) out += sep;
      const json* item = &d[i];
      if (attr) {
        ASSIGN_OR_RETURN(item, Attribute(d[i], ToStr(*attr)));
        if (!item) continue;
      }
      out += PyStr(*item);
      if (static_cast<int64_t>(out.size()) > max_bytes) return Error("join output too long");
    }
    return Value::Data(std::move(out));
  }
  if (name == "unique") {
    if (!d.is_array()) return Error("unique needs a list");
    json out = json::array();
    for (const json& item : d) {
      if (std::find(out.begin(), out.end(), item) == out.end()) out.push_back(item);
    }
    return Value::Data(std::move(out));
  }
  if (name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr") {
    return SelectOrReject(name, input, args);
  }
  if (name == "map") {
    if (input.is_undefined()) return Value::Data(json::array());
    if (!d.is_array()) return Error("map needs a list");
    json out = json::array();
    if (const Value* attr = args.Get("attribute")) {
      const Value* dflt = args.Get("default");
      for (const json& item : d) {
        ASSIGN_OR_RETURN(const json* found, Attribute(item, ToStr(*attr)));
        out.push_back(found ? *found : dflt ? ToData(*dflt) : json());
      }
      return Value::Data(std::move(out));
    }
    if (args.args.empty()) return Error("map needs a filter name or attribute=");
    std::string filter = ToStr(args.args[0]);
    CallArgs rest;
    rest.args.assign(args.args.begin() + 1, args.args.end());
    for (const json& item : d) {
      ASSIGN_OR_RETURN(Value mapped, ApplyFilter(filter, Value::Data(item), rest, max_bytes));
      out.push_back(ToData(mapped));
    }
    return Value::Data(std::move(out));
  }
  if (input.is_data() && d.is_string()) {
    static const char* kStringFilters[] = {"trim",  "upper",      "lower",
                                           "title", "capitalize", "replace"};
    for (const char* f : kStringFilters) {
      if (name != f) continue;
      std::string method = name == "trim" ? "strip" : name;
      auto result = CallMethod(input, method, args, max_bytes);
      return std::move(*result);
    }
  }
  if (name == "trim" || name == "upper" || name == "lower" || name == "title" ||
      name == "capitalize" || name == "replace") {
    return ApplyFilter(name, Value::Data(ToStr(input)), args, max_bytes);
  }
  return Error(absl::StrCat("unknown filter '", name, "'"));
}

std::optional<absl::StatusOr<Value>> CallMethod(const Value& object, const std::string& name,
                                                const CallArgs& args, int64_t max_bytes) {
  if (!object.is_data()) return std::nullopt;
  const json& d = object.data;
  const std::string empty;
  if (d.is_string()) {
    const std::string& s = d.get_ref<const std::string&>();
    if (name == "strip") return Value::Data(Strip(s, true, true, args.Get("chars", 0)));
    if (name == "lstrip") return Value::Data(Strip(s, true, false, args.Get("chars", 0)));
    if (name == "rstrip") return Value::Data(Strip(s, false, true, args.Get("chars", 0)));
    if (name == "upper" || name == "lower") {
      std::string out = s;
      for (char& c : out) c = name == "upper" ? std::toupper(c) : std::tolower(c);
      return Value::Data(std::move(out));
    }
    if (name == "title") return Value::Data(Title(s));
    if (name == "capitalize") {
      std::string out = s;
      for (char& c : out) c = std::tolower(c);
      if (!out.empty()) out[0] = std::toupper(out[0]);
      return Value::Data(std::move(out));
    }
    if (name == "startswith" || name == "endswith") {
      const std::string& affix = StringArg(args.Get("prefix", 0), empty);
      bool hit =
          s.size() >= affix.size() &&
          (name == "startswith" ? s.compare(0, affix.size(), affix) == 0
                                : s.compare(s.size() - affix.size(), affix.size(), affix) == 0);
      return Value::Data(hit);
    }
    if (name == "replace") {
      const Value* from = args.Get("old", 0);
      const Value* to = args.Get("new", 1);
      if (!from || !to) return absl::StatusOr<Value>(Error("replace() needs two arguments"));
      absl::StatusOr<std::string> out = Replace(s, ToStr(*from), ToStr(*to), max_bytes);
      if (!out.ok()) return absl::StatusOr<Value>(out.status());
      return Value::Data(*std::move(out));
    }
    if (name == "split") {
      const Value* sep = args.Get("sep", 0);
      json out = json::array();
      if (!sep || !sep->is_data() || sep->data.is_null()) {
        size_t i = 0;
        while (true) {
          while (i < s.size() && IsSpace(s[i])) ++i;
          if (i >= s.size()) break;
          size_t j = i;
          while (j < s.size() && !IsSpace(s[j])) ++j;
          out.push_back(s.substr(i, j - i));
          i = j;
        }
        return Value::Data(std::move(out));
      }
      std::string delim = ToStr(*sep);
      if (delim.empty()) return absl::StatusOr<Value>(Error("split() with an empty separator"));
      size_t pos = 0;
      while (true) {
        size_t hit = s.find(delim, pos);
        out.push_back(s.substr(pos, hit == std::string::npos ? std::string::npos : hit - pos));
        if (hit == std::string::npos) break;
        pos = hit + delim.size();
      }
      return Value::Data(std::move(out));
    }
    if (name == "find") {
      size_t hit = s.find(StringArg(args.Get("sub", 0), empty));
      return Value::Data(hit == std::string::npos ? int64_t{-1} : static_cast<int64_t>(hit));
    }
    return std::nullopt;
  }
  if (d.is_object()) {
    if (name == "items") return Value::Data(Items(d));
    if (name == "keys" || name == "values") {
      json out = json::array();
      for (const auto& [key, value] : d.items()) {
        out.push_back(name == "keys" ? json(key) : value);
      }
      return Value::Data(std::move(out));
    }
    if (name == "get") {
      const Value* key = args.Get("key", 0);
      const Value* dflt = args.Get("default", 1);
      if (key && key->is_data() && key->data.is_string() &&
          d.contains(key->data.get<std::string>())) {
        return Value::Data(d[key->data.get<std::string>()]);
      }
      return dflt ? *dflt : Value::Data(nullptr);
    }
  }
  return std::nullopt;
}

}  // namespace pagoda::jinja
