// Runtime values of the Jinja interpreter and its built-in filters, tests and methods.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/chat_template/internal/jinja_ast.h"
#include "nlohmann/json.hpp"

namespace pagoda::jinja {

struct Value {
  enum class Kind { kUndefined, kData, kNamespace, kMacro, kBuiltin };
  Kind kind = Kind::kUndefined;
  nlohmann::json data;                 // kData
  std::shared_ptr<nlohmann::json> ns;  // kNamespace: its attributes, shared by every copy
  const Stmt* macro = nullptr;         // kMacro
  std::string name;                    // kBuiltin: function; kUndefined: what was missing

  static Value Data(nlohmann::json j) {
    Value v;
    v.kind = Kind::kData;
    v.data = std::move(j);
    return v;
  }
  static Value Undefined(std::string what) {
    Value v;
    v.name = std::move(what);
    return v;
  }
  bool is_undefined() const { return kind == Kind::kUndefined; }
  bool is_data() const { return kind == Kind::kData; }
};

struct CallArgs {
  std::vector<Value> args;
  std::vector<std::pair<std::string, Value>> kwargs;

  /// Keyword `name`, else positional `index` (when >= 0), else null.
  const Value* Get(const std::string& name, int index = -1) const {
    for (const auto& [key, value] : kwargs) {
      if (key == name) return &value;
    }
    if (index >= 0 && index < static_cast<int>(args.size())) return &args[index];
    return nullptr;
  }
};

bool Truthy(const Value& v);
/// Python str() of a value; undefined is "".
std::string ToStr(const Value& v);
/// Plain JSON for a value (namespaces become objects, undefined and callables null).
nlohmann::json ToData(const Value& v);

/// The built-ins. `max_bytes` bounds strings and lists they build. Errors are InvalidArgument
/// without a location; the interpreter adds it.
absl::StatusOr<Value> ApplyFilter(const std::string& name, const Value& input, const CallArgs& args,
                                  int64_t max_bytes);
absl::StatusOr<bool> ApplyTest(const std::string& name, const Value& input, const CallArgs& args);
/// A method of a string, list or dict (`s.strip()`, `d.items()`); nullopt when there is none.
std::optional<absl::StatusOr<Value>> CallMethod(const Value& object, const std::string& name,
                                                const CallArgs& args, int64_t max_bytes);

/// Nesting depth of a value (scalars 0, [] 1), counted only up to limit + 1 so it is bounded.
int NestingDepth(const nlohmann::json& v, int limit);
/// Approximate memory of a value in bytes, counted only up to budget + 1 so it is bounded.
int64_t ApproxBytes(const nlohmann::json& v, int64_t budget);
/// Values deeper than this are refused: printing, comparing and copying them recurse.
inline constexpr int kMaxValueDepth = 128;

/// Python-style indexing helpers over strings (by code point) and arrays.
int64_t Length(const nlohmann::json& v);  // -1 when it has none
absl::StatusOr<Value> Slice(const Value& v, std::optional<int64_t> start,
                            std::optional<int64_t> stop, std::optional<int64_t> step);

}  // namespace pagoda::jinja
