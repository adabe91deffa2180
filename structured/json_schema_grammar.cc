#include "structured/json_schema_grammar.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "structured/gbnf_parser.h"
#include "structured/internal/utf8_ranges.h"
#include "structured/regex_grammar.h"

namespace pagoda::structured {
namespace {

using Json = nlohmann::ordered_json;

constexpr int kMaxIntegerDigits = 19;
constexpr int kMaxLengthBound = kMaxGbnfRepetition;

const std::set<std::string>& Annotations() {
  static const auto* kAnnotations = new std::set<std::string>{
      "title",    "description", "default",  "examples",  "$schema", "$id",
      "$comment", "deprecated",  "readOnly", "writeOnly", "$defs",   "definitions"};
  return *kAnnotations;
}

// The keywords that constrain one type (the others ignore them, as JSON Schema says).
const std::set<std::string>& KeywordsOf(const std::string& type) {
  static const auto* kByType = new std::map<std::string, std::set<std::string>>{
      {"object", {"properties", "required", "additionalProperties"}},
      {"array", {"items", "prefixItems", "minItems", "maxItems"}},
      {"string", {"minLength", "maxLength", "pattern", "format"}},
      {"integer", {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}},
  };
  static const auto* kNone = new std::set<std::string>();
  const auto it = kByType->find(type);
  return it == kByType->end() ? *kNone : it->second;
}

const std::set<std::string>& Supported() {
  static const auto* kSupported = new std::set<std::string>{"type",
                                                            "properties",
                                                            "required",
                                                            "additionalProperties",
                                                            "items",
                                                            "prefixItems",
                                                            "minItems",
                                                            "maxItems",
                                                            "enum",
                                                            "const",
                                                            "anyOf",
                                                            "oneOf",
                                                            "allOf",
                                                            "$ref",
                                                            "minLength",
                                                            "maxLength",
                                                            "pattern",
                                                            "format",
                                                            "minimum",
                                                            "maximum",
                                                            "exclusiveMinimum",
                                                            "exclusiveMaximum"};
  return *kSupported;
}

// Decimal strings of equal length in [lo, hi] (lo <= hi, digits only), as a GBNF expression.
std::string SameLengthRange(const std::string& lo, const std::string& hi) {
  if (lo.empty()) return "";
  if (lo == hi) return GbnfLiteral(lo);
  if (lo[0] == hi[0]) {
    return absl::StrCat(GbnfLiteral(lo.substr(0, 1)), " ",
                        SameLengthRange(lo.substr(1), hi.substr(1)));
  }
  const size_t rest = lo.size() - 1;
  std::vector<std::string> alts;
  const std::string nines(rest, '9'), zeros(rest, '0');
  const auto with_rest = [&](char first, const std::string& a, const std::string& b) {
    std::string r = SameLengthRange(a, b);
    return r.empty() ? GbnfLiteral(std::string(1, first))
                     : absl::StrCat(GbnfLiteral(std::string(1, first)), " ", r);
  };
  alts.push_back(with_rest(lo[0], lo.substr(1), nines));
  if (hi[0] - lo[0] > 1) {
    std::string middle = absl::StrCat("[", std::string(1, static_cast<char>(lo[0] + 1)), "-",
                                      std::string(1, static_cast<char>(hi[0] - 1)), "]");
    if (rest > 0) absl::StrAppend(&middle, " [0-9]{", rest, "}");
    alts.push_back(middle);
  }
  alts.push_back(with_rest(hi[0], zeros, hi.substr(1)));
  return absl::StrCat("(", absl::StrJoin(alts, " | "), ")");
}

// Non-negative integers without leading zeros in [lo, hi]; hi < 0 means no upper bound (up to
// kMaxIntegerDigits digits).
std::string NonNegativeRange(int64_t lo, int64_t hi) {
  const std::string lo_text = std::to_string(lo);
  std::vector<std::string> alts;
  const int max_digits = hi < 0 ? kMaxIntegerDigits : static_cast<int>(std::to_string(hi).size());
  for (int len = static_cast<int>(lo_text.size()); len <= max_digits; ++len) {
    const std::string first = len == static_cast<int>(lo_text.size())
                                  ? lo_text
                                  : (len == 1 ? "0" : "1" + std::string(len - 1, '0'));
    const std::string last =
        hi >= 0 && len == max_digits ? std::to_string(hi) : std::string(len, '9');
    if (hi < 0 && len > static_cast<int>(lo_text.size())) {
      alts.push_back(absl::StrCat("[1-9] [0-9]{", len - 1, ",", kMaxIntegerDigits - 1, "}"));
      break;
    }
    alts.push_back(SameLengthRange(first, last));
  }
  return alts.size() == 1 ? alts[0] : absl::StrCat("(", absl::StrJoin(alts, " | "), ")");
}

class SchemaConverter {
 public:
  SchemaConverter(const Json& root, const JsonSchemaOptions& options)
      : root_(root), options_(options) {}

  absl::StatusOr<std::string> Convert() {
    AddPrimitives();
    ASSIGN_OR_RETURN(std::string root_expr, Visit(root_, "root", 0));
    rules_.insert(rules_.begin(), {"root", root_expr});
    std::string out;
    for (const auto& [name, body] : rules_) absl::StrAppend(&out, name, " ::= ", body, "\n");
    return out;
  }

  void AddPrimitives() {
    // Nothing, one space, or a newline and its indentation: pretty-printed JSON, but no runs of
    // blank lines or spaces (where small models otherwise loop until max_tokens).
    Define("ws", options_.max_whitespace > 0
                     ? absl::StrCat(R"(( " " | "\n" [ \t]{0,)", options_.max_whitespace, "} )?")
                     : "\"\"");
    Define("char", R"([^"\\\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4}))");
    Define("string", R"("\"" char* "\"")");
    Define("integer", absl::StrCat(R"("-"? ("0" | [1-9] [0-9]{0,)", kMaxIntegerDigits - 1, "})"));
    Define("number", absl::StrCat(R"("-"? ("0" | [1-9] [0-9]{0,)", kMaxIntegerDigits - 1,
                                  R"(}) ("." [0-9]{1,)", kMaxIntegerDigits,
                                  R"(})? ([eE] [-+]? [0-9]{1,3})?)"));
    Define("boolean", R"("true" | "false")");
    Define("null", R"("null")");
    Define("value", "object | array | string | number | boolean | null");
    Define("object",
           R"("{" ws (string ws ":" ws value (ws "," ws string ws ":" ws value)*)? ws "}")");
    Define("array", R"("[" ws (value (ws "," ws value)*)? ws "]")");
  }

 private:
  absl::Status Error(const std::string& path, std::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat("JSON Schema at ", path.empty() ? "/" : path, ": ", std::string(what)));
  }

  void Define(const std::string& name, std::string body) {
    rules_.push_back({name, std::move(body)});
    names_.insert(name);
  }

  // A new rule for `body`, reusing one with the same body.
  std::string Rule(const std::string& hint, const std::string& body) {
    if (auto it = by_body_.find(body); it != by_body_.end()) return it->second;
    std::string name = hint;
    for (int i = 2; names_.contains(name); ++i) name = absl::StrCat(hint, "-", i);
    Define(name, body);
    by_body_[body] = name;
    return name;
  }

  static std::string Sanitize(const std::string& text) {
    std::string out;
    for (char c : text) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
      out += ok ? c : '-';
    }
    return out.substr(0, 40);
  }

  absl::StatusOr<std::string> Visit(const Json& schema, const std::string& path, int depth) {
    if (depth > kMaxJsonSchemaDepth) {
      return Error(path, absl::StrCat("nested deeper than ", kMaxJsonSchemaDepth));
    }
    if (schema.is_boolean()) {
      if (schema.get<bool>()) return std::string("value");
      return Error(path, "the schema false accepts nothing");
    }
    if (!schema.is_object()) return Error(path, "a schema must be an object or a boolean");
    for (const auto& [key, unused] : schema.items()) {
      if (!Supported().contains(key) && !Annotations().contains(key)) {
        return Error(path, absl::StrCat("the keyword '", key, "' is not supported"));
      }
    }
    const auto only = [&](std::initializer_list<const char*> allowed) -> absl::Status {
      for (const auto& [key, unused] : schema.items()) {
        if (Annotations().contains(key)) continue;
        bool ok = false;
        for (const char* a : allowed) ok = ok || key == a;
        if (!ok) {
          return Error(path, absl::StrCat("the keyword '", key, "' beside '", *allowed.begin(),
                                          "' is not supported"));
        }
      }
      return absl::OkStatus();
    };
    if (schema.contains("$ref")) {
      RETURN_IF_ERROR(only({"$ref"}));
      return Ref(schema["$ref"], path, depth);
    }
    for (const char* key : {"anyOf", "oneOf"}) {
      if (!schema.contains(key)) continue;
      RETURN_IF_ERROR(only({key}));
      const Json& list = schema[key];
      if (!list.is_array() || list.empty()) {
        return Error(path, absl::StrCat("'", key, "' must be a non-empty array"));
      }
      std::vector<std::string> alts;
      for (size_t i = 0; i < list.size(); ++i) {
        ASSIGN_OR_RETURN(std::string alt,
                         Visit(list[i], absl::StrCat(path, "/", key, "/", i), depth + 1));
        alts.push_back(alt);
      }
      return Rule(Sanitize(absl::StrCat(path, "-", key)), absl::StrJoin(alts, " | "));
    }
    if (schema.contains("allOf")) {
      RETURN_IF_ERROR(only({"allOf"}));
      const Json& list = schema["allOf"];
      if (!list.is_array() || list.size() != 1) {
        return Error(path, "'allOf' is supported with exactly one schema");
      }
      return Visit(list[0], path + "/allOf/0", depth + 1);
    }
    if (schema.contains("const")) {
      RETURN_IF_ERROR(only({"const", "type"}));
      return GbnfLiteral(schema["const"].dump());
    }
    std::vector<std::string> types;
    if (schema.contains("type")) {
      const Json& type = schema["type"];
      if (type.is_string()) {
        types.push_back(type.get<std::string>());
      } else if (type.is_array() && !type.empty()) {
        for (const Json& t : type) {
          if (!t.is_string()) return Error(path, "'type' must be a string or a list of strings");
          types.push_back(t.get<std::string>());
        }
      } else {
        return Error(path, "'type' must be a string or a non-empty list of strings");
      }
    }
    if (schema.contains("enum")) {
      RETURN_IF_ERROR(only({"enum", "type"}));
      return Enum(schema["enum"], types, path);
    }
    if (types.empty()) {
      if (schema.contains("properties") || schema.contains("additionalProperties") ||
          schema.contains("required")) {
        types.push_back("object");
      } else if (schema.contains("items") || schema.contains("prefixItems")) {
        types.push_back("array");
      } else if (schema.contains("pattern") || schema.contains("format") ||
                 schema.contains("minLength") || schema.contains("maxLength")) {
        types.push_back("string");
      } else {
        return std::string("value");
      }
    }
    std::vector<std::string> alts;
    for (const std::string& type : types) {
      if (types.size() == 1) {
        ASSIGN_OR_RETURN(std::string alt, Typed(schema, type, path, depth));
        alts.push_back(alt);
        continue;
      }
      // {"type": ["string", "null"], "maxLength": 8}: each type sees only its own keywords and
      // those no listed type claims (so an unsupported one is still an error).
      Json own = schema;
      for (const std::string& other : types) {
        if (other == type) continue;
        for (const std::string& key : KeywordsOf(other)) {
          if (!KeywordsOf(type).contains(key)) own.erase(key);
        }
      }
      ASSIGN_OR_RETURN(std::string alt, Typed(own, type, path, depth));
      alts.push_back(alt);
    }
    if (alts.size() == 1) return alts[0];
    return Rule(Sanitize(path + "-types"), absl::StrJoin(alts, " | "));
  }

  absl::Status OnlyFor(const Json& schema, const std::string& type, const std::string& path) {
    for (const auto& [key, unused] : schema.items()) {
      if (Annotations().contains(key) || key == "type" || KeywordsOf(type).contains(key)) continue;
      return Error(path,
                   absl::StrCat("the keyword '", key, "' is not supported for type '", type, "'"));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> Typed(const Json& schema, const std::string& type,
                                    const std::string& path, int depth) {
    if (type == "object") return Object(schema, path, depth);
    if (type == "array") return Array(schema, path, depth);
    if (type == "string") return String(schema, path);
    if (type == "integer") return Integer(schema, path);
    if (type == "number") {
      RETURN_IF_ERROR(OnlyFor(schema, type, path));
      return std::string("number");
    }
    if (type == "boolean" || type == "null") {
      RETURN_IF_ERROR(OnlyFor(schema, type, path));
      return type;
    }
    return Error(path, absl::StrCat("unknown type '", type, "'"));
  }

  absl::StatusOr<std::string> Ref(const Json& ref, const std::string& path, int depth) {
    if (!ref.is_string()) return Error(path, "'$ref' must be a string");
    const std::string target = ref.get<std::string>();
    if (auto it = refs_.find(target); it != refs_.end()) return it->second;
    if (target.empty() || target[0] != '#') {
      return Error(path, absl::StrCat("'$ref' ", target,
                                      ": only references into this schema (#...)"
                                      " are supported"));
    }
    const Json* node = &root_;
    std::string rest = target.substr(1);
    while (!rest.empty()) {
      if (rest[0] != '/') return Error(path, absl::StrCat("'$ref' ", target, " is malformed"));
      const size_t next = rest.find('/', 1);
      std::string token = rest.substr(1, next == std::string::npos ? std::string::npos : next - 1);
      rest = next == std::string::npos ? "" : rest.substr(next);
      std::string unescaped;
      for (size_t i = 0; i < token.size(); ++i) {
        if (token[i] == '~' && i + 1 < token.size()) {
          unescaped += token[i + 1] == '1' ? '/' : '~';
          ++i;
        } else {
          unescaped += token[i];
        }
      }
      if (!node->is_object() || !node->contains(unescaped)) {
        return Error(path, absl::StrCat("'$ref' ", target, " points to nothing"));
      }
      node = &(*node)[unescaped];
    }
    // Named before visiting, so a recursive reference finds the rule.
    std::string name = absl::StrCat("ref-", Sanitize(target.substr(1)));
    for (int i = 2; names_.contains(name); ++i) name = absl::StrCat("ref-", Sanitize(target), i);
    names_.insert(name);
    refs_[target] = name;
    const size_t slot = rules_.size();
    rules_.push_back({name, ""});
    ASSIGN_OR_RETURN(std::string body, Visit(*node, target, depth + 1));
    rules_[slot].second = body;
    return name;
  }

  absl::StatusOr<std::string> Enum(const Json& values, const std::vector<std::string>& types,
                                   const std::string& path) {
    if (!values.is_array() || values.empty())
      return Error(path, "'enum' must be a non-empty array");
    const auto type_of = [](const Json& v) -> std::string {
      if (v.is_object()) return "object";
      if (v.is_array()) return "array";
      if (v.is_string()) return "string";
      if (v.is_boolean()) return "boolean";
      if (v.is_null()) return "null";
      if (v.is_number_integer() || v.is_number_unsigned()) return "integer";
      return "number";
    };
    std::vector<std::string> alts;
    for (const Json& v : values) {
      const std::string t = type_of(v);
      bool ok = types.empty();
      for (const std::string& want : types)
        ok = ok || want == t || (want == "number" && t == "integer");
      if (ok) alts.push_back(GbnfLiteral(v.dump()));
    }
    if (alts.empty()) return Error(path, "no 'enum' value has the schema's 'type'");
    return Rule(Sanitize(path + "-enum"), absl::StrJoin(alts, " | "));
  }

  absl::StatusOr<std::string> Object(const Json& schema, const std::string& path, int depth) {
    RETURN_IF_ERROR(OnlyFor(schema, "object", path));
    std::vector<std::pair<std::string, std::string>> props;  // key literal, value rule
    std::set<std::string> required;
    if (schema.contains("required")) {
      if (!schema["required"].is_array()) return Error(path, "'required' must be an array");
      for (const Json& r : schema["required"]) {
        if (!r.is_string()) return Error(path, "'required' must list strings");
        required.insert(r.get<std::string>());
      }
    }
    std::vector<std::string> keys;
    if (schema.contains("properties")) {
      const Json& properties = schema["properties"];
      if (!properties.is_object()) return Error(path, "'properties' must be an object");
      for (const auto& [key, sub] : properties.items()) {
        ASSIGN_OR_RETURN(std::string value,
                         Visit(sub, absl::StrCat(path, "/properties/", key), depth + 1));
        props.push_back({GbnfLiteral(Json(key).dump()), value});
        keys.push_back(key);
      }
    }
    for (const std::string& r : required) {
      if (std::find(keys.begin(), keys.end(), r) == keys.end()) {
        return Error(path, absl::StrCat("'required' names '", r, "', which 'properties' lacks"));
      }
    }
    std::string extra;  // a rule for one additional key-value pair, or empty
    if (schema.contains("additionalProperties")) {
      const Json& ap = schema["additionalProperties"];
      if (!(ap.is_boolean() && !ap.get<bool>())) {
        ASSIGN_OR_RETURN(std::string value, Visit(ap, path + "/additionalProperties", depth + 1));
        extra = Rule(Sanitize(path + "-extra"),
                     absl::StrCat(ExtraKey(keys, path), " ws \":\" ws ", value));
      }
    }
    // first[i]: properties i.. when none was written yet; rest[i]: after one was (so a comma
    // comes first). The additional pairs come last, left-recursively.
    const std::string base = Sanitize(path.empty() ? "root" : path);
    std::string tail_rest = "\"\"", tail_first = "\"\"";
    if (!extra.empty()) {
      std::string more = base + "-more";
      for (int i = 2; names_.contains(more); ++i) more = absl::StrCat(base, "-more-", i);
      Define(more, absl::StrCat(more, " ws \",\" ws ", extra, " | \"\""));
      tail_rest = more;
      tail_first = absl::StrCat("(", extra, " ", more, ")?");
    }
    std::string rest = tail_rest, first = tail_first;
    for (size_t i = props.size(); i-- > 0;) {
      const std::string kv = absl::StrCat(props[i].first, " ws \":\" ws ", props[i].second);
      const bool is_required = required.contains(keys[i]);
      const std::string new_rest = Rule(absl::StrCat(base, "-r", i),
                                        absl::StrCat("ws \",\" ws ", kv, " ", rest,
                                                     is_required ? "" : absl::StrCat(" | ", rest)));
      const std::string new_first =
          Rule(absl::StrCat(base, "-f", i),
               absl::StrCat(kv, " ", rest, is_required ? "" : absl::StrCat(" | ", first)));
      rest = new_rest;
      first = new_first;
    }
    return Rule(base + "-object", absl::StrCat("\"{\" ws ", first, " ws \"}\""));
  }

  // A JSON string key (no escapes) other than `keys`: a trie over the keys' code points.
  std::string ExtraKey(const std::vector<std::string>& keys, const std::string& path) {
    if (keys.empty()) return "string";
    std::vector<std::vector<uint32_t>> cps;
    for (const std::string& key : keys) {
      std::vector<uint32_t> k;
      for (size_t pos = 0; pos < key.size();) {
        uint32_t cp = 0;
        if (!internal::DecodeUtf8(key, &pos, &cp)) break;
        k.push_back(cp);
      }
      cps.push_back(k);
    }
    const std::string free_char = "[^\"\\\\\\x00-\\x1F]";
    const std::string base = Sanitize(path.empty() ? "root" : path) + "-key";
    int counter = 0;
    // The rule for "the key so far equals the prefix `prefix` of some named key".
    std::function<std::string(const std::vector<uint32_t>&)> node =
        [&](const std::vector<uint32_t>& prefix) -> std::string {
      std::set<uint32_t> next;
      bool terminal = false;
      for (const auto& k : cps) {
        if (k.size() < prefix.size() || !std::equal(prefix.begin(), prefix.end(), k.begin())) {
          continue;
        }
        if (k.size() == prefix.size()) {
          terminal = true;
        } else {
          next.insert(k[prefix.size()]);
        }
      }
      std::vector<std::string> alts;
      if (!terminal) alts.push_back("\"\\\"\"");
      std::string excluded;
      for (uint32_t c : next) {
        if (c == '"' || c == '\\' || c < 0x20) continue;  // never in an unescaped key
        std::vector<uint32_t> longer = prefix;
        longer.push_back(c);
        alts.push_back(absl::StrCat(GbnfLiteral(internal::EncodeUtf8(c)), " ", node(longer)));
        absl::StrAppend(&excluded, absl::StrFormat("\\U%08X", c));
      }
      alts.push_back(absl::StrCat("[^\"\\\\\\x00-\\x1F", excluded, "] ", free_char, "* \"\\\"\""));
      return Rule(absl::StrCat(base, ++counter), absl::StrJoin(alts, " | "));
    };
    return absl::StrCat("\"\\\"\" ", node({}));
  }

  absl::StatusOr<std::string> Array(const Json& schema, const std::string& path, int depth) {
    RETURN_IF_ERROR(OnlyFor(schema, "array", path));
    ASSIGN_OR_RETURN(int64_t min_items, Count(schema, "minItems", path, 0));
    ASSIGN_OR_RETURN(int64_t max_items, Count(schema, "maxItems", path, -1));
    if (max_items >= 0 && max_items < min_items) return Error(path, "'maxItems' below 'minItems'");
    std::vector<std::string> prefix;
    if (schema.contains("prefixItems")) {
      const Json& list = schema["prefixItems"];
      if (!list.is_array()) return Error(path, "'prefixItems' must be an array");
      for (size_t i = 0; i < list.size(); ++i) {
        ASSIGN_OR_RETURN(std::string item,
                         Visit(list[i], absl::StrCat(path, "/prefixItems/", i), depth + 1));
        prefix.push_back(item);
      }
    }
    std::string item = "value";
    bool more_allowed = true;
    if (schema.contains("items")) {
      const Json& items = schema["items"];
      if (items.is_boolean() && !items.get<bool>()) {
        more_allowed = false;
      } else {
        ASSIGN_OR_RETURN(item, Visit(items, path + "/items", depth + 1));
      }
    }
    const int64_t k = static_cast<int64_t>(prefix.size());
    if (min_items > kMaxLengthBound || max_items > kMaxLengthBound) {
      return Error(path, absl::StrCat("'minItems'/'maxItems' above ", kMaxLengthBound,
                                      " are not supported"));
    }
    const std::string sep = "ws \",\" ws ";
    std::vector<std::string> alts;
    // Arrays that end inside the prefix items.
    for (int64_t n = std::max<int64_t>(min_items, 0); n < k && (max_items < 0 || n <= max_items);
         ++n) {
      std::string body;
      for (int64_t i = 0; i < n; ++i) absl::StrAppend(&body, i ? sep : "", prefix[i], " ");
      alts.push_back(body.empty() ? "\"\"" : body);
    }
    // All prefix items, then `item` between max(min - k, 0) and max - k times.
    if (max_items < 0 || max_items >= k) {
      std::string body;
      for (int64_t i = 0; i < k; ++i) absl::StrAppend(&body, i ? sep : "", prefix[i], " ");
      const int64_t lo = std::max<int64_t>(min_items - k, 0);
      const int64_t hi = !more_allowed ? 0 : (max_items < 0 ? -1 : max_items - k);
      if (!(lo > 0 && !more_allowed)) {
        if (hi != 0) {
          // The first extra item has no comma before it when there is no prefix.
          const std::string one = k == 0 ? item : absl::StrCat("(", sep, item, ")");
          const std::string others = absl::StrCat("(", sep, item, ")");
          const auto bound = [](int64_t v) { return v < 0 ? std::string() : std::to_string(v); };
          std::string extra;
          if (lo >= 1) {
            extra =
                absl::StrCat(one, " ", others, "{", lo - 1, ",", bound(hi < 0 ? -1 : hi - 1), "}");
          } else {
            extra = absl::StrCat("(", one, " ", others, "{0,", bound(hi < 0 ? -1 : hi - 1), "})?");
          }
          absl::StrAppend(&body, extra);
        }
        alts.push_back(body.empty() ? "\"\"" : body);
      }
    }
    if (alts.empty()) return Error(path, "'minItems' cannot be met by 'prefixItems' and 'items'");
    return Rule(Sanitize(path + "-array"),
                absl::StrCat("\"[\" ws (", absl::StrJoin(alts, " | "), ") ws \"]\""));
  }

  absl::StatusOr<int64_t> Count(const Json& schema, const char* key, const std::string& path,
                                int64_t absent) {
    if (!schema.contains(key)) return absent;
    const Json& v = schema[key];
    if (!v.is_number_integer() && !v.is_number_unsigned()) {
      return Error(path, absl::StrCat("'", key, "' must be a non-negative integer"));
    }
    if (v.get<int64_t>() < 0) {
      return Error(path, absl::StrCat("'", key, "' must be a non-negative integer"));
    }
    return v.get<int64_t>();
  }

  absl::StatusOr<std::string> String(const Json& schema, const std::string& path) {
    RETURN_IF_ERROR(OnlyFor(schema, "string", path));
    const bool has_length = schema.contains("minLength") || schema.contains("maxLength");
    if (schema.contains("pattern")) {
      if (has_length || schema.contains("format")) {
        return Error(path,
                     "'pattern' together with 'minLength', 'maxLength' or 'format' is not "
                     "supported");
      }
      if (!schema["pattern"].is_string()) return Error(path, "'pattern' must be a string");
      ASSIGN_OR_RETURN(std::string expr,
                       RegexToGbnfExpression(schema["pattern"].get<std::string>(), true));
      return Rule(Sanitize(path + "-pattern"), absl::StrCat("\"\\\"\" ", expr, " \"\\\"\""));
    }
    if (schema.contains("format")) {
      if (has_length) return Error(path, "'format' together with a length is not supported");
      if (!schema["format"].is_string()) return Error(path, "'format' must be a string");
      return Format(schema["format"].get<std::string>(), path);
    }
    if (!has_length) return std::string("string");
    ASSIGN_OR_RETURN(int64_t min_length, Count(schema, "minLength", path, 0));
    ASSIGN_OR_RETURN(int64_t max_length, Count(schema, "maxLength", path, -1));
    if (max_length >= 0 && max_length < min_length) {
      return Error(path, "'maxLength' below 'minLength'");
    }
    if (min_length > kMaxLengthBound || max_length > kMaxLengthBound) {
      return Error(path, absl::StrCat("'minLength'/'maxLength' above ", kMaxLengthBound,
                                      " are not supported"));
    }
    return Rule(Sanitize(path + "-string"),
                absl::StrCat("\"\\\"\" char{", min_length, ",",
                             max_length < 0 ? "" : std::to_string(max_length), "} \"\\\"\""));
  }

  absl::StatusOr<std::string> Format(const std::string& format, const std::string& path) {
    if (!formats_defined_) {
      formats_defined_ = true;
      Define(
          "fmt-date",
          R"(([1-9] [0-9]{3} | "0" ([1-9] [0-9]{2} | "0" ([1-9] [0-9] | "0" [1-9]))) "-" (("0" [13578] | "1" [02]) "-" ("0" [1-9] | [12] [0-9] | "3" [01]) | ("0" [469] | "11") "-" ("0" [1-9] | [12] [0-9] | "30") | "02-" ("0" [1-9] | "1" [0-9] | "2" [0-8])))");
      Define(
          "fmt-time",
          R"(([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9] ":" [0-5] [0-9] ("." [0-9]{1,6})? ("Z" | [+-] ([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9]))");
      Define("fmt-hex", "[0-9a-fA-F]");
    }
    std::string body;
    if (format == "date") {
      body = "fmt-date";
    } else if (format == "time") {
      body = "fmt-time";
    } else if (format == "date-time") {
      body = R"(fmt-date "T" fmt-time)";
    } else if (format == "uuid") {
      body = R"(fmt-hex{8} "-" fmt-hex{4} "-" fmt-hex{4} "-" fmt-hex{4} "-" fmt-hex{12})";
    } else if (format == "email") {
      body =
          R"([a-zA-Z0-9_%+-] [a-zA-Z0-9._%+-]* "@" [a-zA-Z0-9-]+ ("." [a-zA-Z0-9-]+)* "." [a-zA-Z] [a-zA-Z]+)";
    } else {
      return Error(path, absl::StrCat("the format '", format, "' is not supported"));
    }
    return Rule("fmt-" + Sanitize(format), absl::StrCat("\"\\\"\" ", body, " \"\\\"\""));
  }

  absl::StatusOr<std::string> Integer(const Json& schema, const std::string& path) {
    RETURN_IF_ERROR(OnlyFor(schema, "integer", path));
    constexpr double kLimit = 1e18;
    std::optional<int64_t> lo, hi;
    for (const char* key : {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}) {
      if (!schema.contains(key)) continue;
      const Json& v = schema[key];
      if (!v.is_number()) return Error(path, absl::StrCat("'", key, "' must be a number"));
      const double x = v.get<double>();
      if (std::abs(x) > kLimit) {
        return Error(path, absl::StrCat("'", key, "' beyond +-1e18 is not supported"));
      }
      const std::string k = key;
      int64_t bound = 0;
      if (k == "minimum") bound = static_cast<int64_t>(std::ceil(x));
      if (k == "exclusiveMinimum") bound = static_cast<int64_t>(std::floor(x)) + 1;
      if (k == "maximum") bound = static_cast<int64_t>(std::floor(x));
      if (k == "exclusiveMaximum") bound = static_cast<int64_t>(std::ceil(x)) - 1;
      if (k.find("inimum") != std::string::npos) {
        lo = lo ? std::max(*lo, bound) : bound;
      } else {
        hi = hi ? std::min(*hi, bound) : bound;
      }
    }
    if (!lo && !hi) return std::string("integer");
    if (lo && hi && *lo > *hi) return Error(path, "no integer lies between the bounds");
    std::vector<std::string> alts;
    // Negative part: -n for n in [max(-hi, 1), -lo] (lo absent: no lower limit).
    if (!lo || *lo < 0) {
      const int64_t n_lo = hi ? std::max<int64_t>(-*hi, 1) : 1;
      const int64_t n_hi = lo ? -*lo : -1;
      if (n_hi < 0 || n_lo <= n_hi)
        alts.push_back(absl::StrCat("\"-\" ", NonNegativeRange(n_lo, n_hi)));
    }
    // Non-negative part: [max(lo, 0), hi].
    if (!hi || *hi >= 0) {
      alts.push_back(NonNegativeRange(lo ? std::max<int64_t>(*lo, 0) : 0, hi ? *hi : -1));
    }
    return Rule(Sanitize(path + "-integer"), absl::StrJoin(alts, " | "));
  }

  const Json& root_;
  JsonSchemaOptions options_;
  std::vector<std::pair<std::string, std::string>> rules_;
  std::set<std::string> names_;
  std::map<std::string, std::string> by_body_;
  std::map<std::string, std::string> refs_;
  bool formats_defined_ = false;
};

}  // namespace

absl::StatusOr<std::string> JsonSchemaToGbnf(std::string_view schema_json,
                                             const JsonSchemaOptions& options) {
  if (schema_json.size() > kMaxJsonSchemaBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "JSON Schema: ", schema_json.size(), " bytes, over the limit of ", kMaxJsonSchemaBytes));
  }
  if (options.max_whitespace < 0 || options.max_whitespace > kMaxGbnfRepetition) {
    return absl::InvalidArgumentError("JSON Schema: max_whitespace out of range");
  }
  const Json schema = Json::parse(schema_json, nullptr, /*allow_exceptions=*/false);
  if (schema.is_discarded()) return absl::InvalidArgumentError("JSON Schema: not valid JSON");
  return SchemaConverter(schema, options).Convert();
}

absl::StatusOr<Grammar> JsonSchemaToGrammar(std::string_view schema_json,
                                            const JsonSchemaOptions& options) {
  ASSIGN_OR_RETURN(std::string gbnf, JsonSchemaToGbnf(schema_json, options));
  return ParseGbnf(gbnf);
}

absl::StatusOr<Grammar> JsonObjectGrammar(const JsonSchemaOptions& options) {
  return JsonSchemaToGrammar(R"({"type": "object", "additionalProperties": true})", options);
}

}  // namespace pagoda::structured
