// Tree-walking evaluator for the Jinja2 subset; see jinja_interpreter.h.
#include "common/chat_template/internal/jinja_interpreter.h"

#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/chat_template/internal/jinja_value.h"
#include "common/status_macros.h"

namespace pagoda::jinja {
namespace {

using json = nlohmann::json;

enum class Flow { kNormal, kBreak, kContinue };

class Interpreter {
 public:
  Interpreter(const json& context, const RenderLimits& limits) : limits_(limits) {
    scopes_.emplace_back();
    for (const char* name : {"raise_exception", "range", "namespace", "strftime_now"}) {
      Value f;
      f.kind = Value::Kind::kBuiltin;
      f.name = name;
      scopes_.back()[name] = f;
    }
    if (context.is_object()) {
      for (const auto& [key, value] : context.items()) scopes_.back()[key] = Value::Data(value);
    }
  }

  absl::StatusOr<std::string> Run(const Body& body) {
    ASSIGN_OR_RETURN(Flow flow, ExecBody(body, out_));
    (void)flow;
    return std::move(out_);
  }

 private:
  using Scope = absl::flat_hash_map<std::string, Value>;

  absl::Status ErrorAt(int line, int column, const std::string& message) const {
    return absl::InvalidArgumentError(
        absl::StrCat("chat template error at line ", line, ", column ", column, ": ", message));
  }
  absl::Status ErrorAt(const Expr& e, const std::string& message) const {
    return ErrorAt(e.line, e.column, message);
  }
  // Adds the location to a built-in's bare error; raise_exception's errors pass unchanged.
  absl::Status Locate(const Expr& e, const absl::Status& status) const {
    return ErrorAt(e, std::string(status.message()));
  }

  absl::Status Append(std::string& out, const std::string& text) {
    if (static_cast<int64_t>(out.size() + text.size()) > limits_.max_output_bytes) {
      return absl::InvalidArgumentError(absl::StrCat("chat template output exceeds the limit of ",
                                                     limits_.max_output_bytes, " bytes"));
    }
    out += text;
    return absl::OkStatus();
  }

  absl::Status CheckSize(const Expr& e, const json& value) const {
    int64_t n = value.is_string() ? static_cast<int64_t>(value.get_ref<const std::string&>().size())
                : value.is_array() ? static_cast<int64_t>(value.size())
                                   : 0;
    if (n > limits_.max_output_bytes) return ErrorAt(e, "value exceeds the size limit");
    return absl::OkStatus();
  }

  // For lists and dicts a template builds: copies of big values could multiply memory, and
  // deep ones make printing and comparing recurse.
  absl::Status CheckBuilt(const Expr& e, const json& value) const {
    if (NestingDepth(value, kMaxValueDepth) > kMaxValueDepth) {
      return ErrorAt(e, absl::StrCat("value nested deeper than ", kMaxValueDepth, " levels"));
    }
    if (ApproxBytes(value, limits_.max_output_bytes) > limits_.max_output_bytes) {
      return ErrorAt(e, "value exceeds the size limit");
    }
    return absl::OkStatus();
  }

  const Value* Lookup(const std::string& name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      auto found = it->find(name);
      if (found != it->end()) return &found->second;
    }
    return nullptr;
  }

  absl::StatusOr<Flow> ExecBody(const Body& body, std::string& out) {
    for (const auto& stmt : body) {
      ASSIGN_OR_RETURN(Flow flow, Exec(*stmt, out));
      if (flow != Flow::kNormal) return flow;
    }
    return Flow::kNormal;
  }

  absl::StatusOr<Flow> Exec(const Stmt& s, std::string& out) {
    switch (s.kind) {
      case Stmt::Kind::kText:
        RETURN_IF_ERROR(Append(out, s.text));
        return Flow::kNormal;
      case Stmt::Kind::kOutput: {
        ASSIGN_OR_RETURN(Value v, Eval(*s.exprs[0]));
        RETURN_IF_ERROR(Append(out, ToStr(v)));
        return Flow::kNormal;
      }
      case Stmt::Kind::kIf:
        for (size_t i = 0; i < s.exprs.size(); ++i) {
          ASSIGN_OR_RETURN(Value cond, Eval(*s.exprs[i]));
          if (Truthy(cond)) return ExecBody(s.bodies[i], out);
        }
        return ExecBody(s.bodies.back(), out);
      case Stmt::Kind::kFor:
        return ExecFor(s, out);
      case Stmt::Kind::kSet: {
        ASSIGN_OR_RETURN(Value v, Eval(*s.exprs[0]));
        if (s.attr.empty()) {
          scopes_.back()[s.names[0]] = std::move(v);
          return Flow::kNormal;
        }
        const Value* target = Lookup(s.names[0]);
        if (!target || target->kind != Value::Kind::kNamespace) {
          return ErrorAt(
              s.line, s.column,
              absl::StrCat("cannot assign attribute on non-namespace '", s.names[0], "'"));
        }
        (*target->ns)[s.attr] = ToData(v);
        return Flow::kNormal;
      }
      case Stmt::Kind::kSetBlock: {
        std::string captured;
        ASSIGN_OR_RETURN(Flow flow, ExecBody(s.bodies[0], captured));
        scopes_.back()[s.names[0]] = Value::Data(std::move(captured));
        return flow;
      }
      case Stmt::Kind::kMacro: {
        Value m;
        m.kind = Value::Kind::kMacro;
        m.macro = &s;
        m.name = s.text;
        scopes_.back()[s.text] = m;
        return Flow::kNormal;
      }
      case Stmt::Kind::kBreak:
        return Flow::kBreak;
      case Stmt::Kind::kContinue:
        return Flow::kContinue;
      case Stmt::Kind::kScope:
        return ExecBody(s.bodies[0], out);
    }
    return Flow::kNormal;
  }

  absl::StatusOr<Flow> ExecFor(const Stmt& s, std::string& out) {
    ASSIGN_OR_RETURN(Value iterable, Eval(*s.exprs[0]));
    json items = json::array();
    if (iterable.is_data()) {
      const json& d = iterable.data;
      if (d.is_array()) {
        items = d;
      } else if (d.is_object()) {
        for (const auto& [key, value] : d.items()) items.push_back(key);
      } else if (d.is_string()) {
        ASSIGN_OR_RETURN(Value chars, ApplyFilter("list", iterable, {}, limits_.max_output_bytes));
        items = std::move(chars.data);
      } else {
        return ErrorAt(*s.exprs[0], absl::StrCat("cannot iterate over ", d.type_name()));
      }
    } else if (!iterable.is_undefined()) {
      return ErrorAt(*s.exprs[0], "value is not iterable");
    }
    scopes_.emplace_back();
    auto bind = [&](const json& item) -> absl::Status {
      Scope& scope = scopes_.back();
      if (s.names.size() == 1) {
        scope[s.names[0]] = Value::Data(item);
        return absl::OkStatus();
      }
      if (!item.is_array() || item.size() != s.names.size()) {
        return ErrorAt(s.line, s.column, "cannot unpack loop item into the loop variables");
      }
      for (size_t i = 0; i < s.names.size(); ++i) scope[s.names[i]] = Value::Data(item[i]);
      return absl::OkStatus();
    };
    if (s.exprs[1]) {  // {% for x in xs if cond %} filters before loop.* are computed
      json kept = json::array();
      for (const json& item : items) {
        RETURN_IF_ERROR(CountIteration(s));
        RETURN_IF_ERROR(bind(item));
        ASSIGN_OR_RETURN(Value keep, Eval(*s.exprs[1]));
        if (Truthy(keep)) kept.push_back(item);
      }
      items = std::move(kept);
    }
    const int64_t n = static_cast<int64_t>(items.size());
    Flow result = Flow::kNormal;
    for (int64_t i = 0; i < n; ++i) {
      RETURN_IF_ERROR(CountIteration(s));
      RETURN_IF_ERROR(bind(items[i]));
      json loop = {{"index", i + 1},        {"index0", i}, {"first", i == 0},
                   {"last", i == n - 1},    {"length", n}, {"revindex", n - i},
                   {"revindex0", n - i - 1}};
      if (i > 0) loop["previtem"] = items[i - 1];
      if (i + 1 < n) loop["nextitem"] = items[i + 1];
      scopes_.back()["loop"] = Value::Data(std::move(loop));
      ASSIGN_OR_RETURN(Flow flow, ExecBody(s.bodies[0], out));
      if (flow == Flow::kBreak) break;
    }
    scopes_.pop_back();
    if (n == 0) {
      ASSIGN_OR_RETURN(result, ExecBody(s.bodies[1], out));
    }
    return result;
  }

  absl::Status CountIteration(const Stmt& s) {
    if (++iterations_ > limits_.max_loop_iterations) {
      return ErrorAt(
          s.line, s.column,
          absl::StrCat("loop iteration limit of ", limits_.max_loop_iterations, " exceeded"));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<CallArgs> EvalArgs(const Expr& e, size_t first) {
    CallArgs args;
    for (size_t i = first; i < e.args.size(); ++i) {
      ASSIGN_OR_RETURN(Value v, Eval(*e.args[i]));
      args.args.push_back(std::move(v));
    }
    for (const auto& [key, expr] : e.kwargs) {
      ASSIGN_OR_RETURN(Value v, Eval(*expr));
      args.kwargs.emplace_back(key, std::move(v));
    }
    return args;
  }

  absl::StatusOr<Value> Eval(const Expr& e) {
    if (++depth_ > limits_.max_call_depth * 16) {
      return ErrorAt(e, "expression evaluation nested too deeply");
    }
    absl::StatusOr<Value> v = EvalInner(e);
    --depth_;
    if (v.ok() && v->is_data()) RETURN_IF_ERROR(CheckSize(e, v->data));
    return v;
  }

  // Evaluates e, borrowing a variable instead of copying it when e just names one. Callers
  // evaluate everything else first: a macro call could move the scope the pointer is into.
  absl::StatusOr<const Value*> EvalBorrowed(const Expr& e, Value& storage) {
    if (e.kind == Expr::Kind::kName) {
      if (const Value* v = Lookup(e.name)) return v;
    }
    ASSIGN_OR_RETURN(storage, Eval(e));
    return &storage;
  }

  absl::StatusOr<Value> EvalInner(const Expr& e) {
    switch (e.kind) {
      case Expr::Kind::kLiteral:
        return Value::Data(e.literal);
      case Expr::Kind::kName: {
        const Value* v = Lookup(e.name);
        return v ? *v : Value::Undefined(e.name);
      }
      case Expr::Kind::kList: {
        json list = json::array();
        for (const auto& item : e.args) {
          ASSIGN_OR_RETURN(Value v, Eval(*item));
          list.push_back(ToData(v));
        }
        RETURN_IF_ERROR(CheckBuilt(e, list));
        return Value::Data(std::move(list));
      }
      case Expr::Kind::kDict: {
        json dict = json::object();
        for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
          ASSIGN_OR_RETURN(Value k, Eval(*e.args[i]));
          ASSIGN_OR_RETURN(Value v, Eval(*e.args[i + 1]));
          dict[ToStr(k)] = ToData(v);
        }
        RETURN_IF_ERROR(CheckBuilt(e, dict));
        return Value::Data(std::move(dict));
      }
      case Expr::Kind::kAttr: {
        Value storage;
        ASSIGN_OR_RETURN(const Value* obj, EvalBorrowed(*e.args[0], storage));
        return GetItem(e, *obj, Value::Data(e.name));
      }
      case Expr::Kind::kItem: {
        ASSIGN_OR_RETURN(Value key, Eval(*e.args[1]));
        Value storage;
        ASSIGN_OR_RETURN(const Value* obj, EvalBorrowed(*e.args[0], storage));
        return GetItem(e, *obj, key);
      }
      case Expr::Kind::kSlice: {
        ASSIGN_OR_RETURN(Value obj, Eval(*e.args[0]));
        std::optional<int64_t> bounds[3];
        for (int i = 0; i < 3; ++i) {
          if (!e.args[i + 1]) continue;
          ASSIGN_OR_RETURN(Value b, Eval(*e.args[i + 1]));
          if (b.is_data() && b.data.is_null()) continue;
          if (!b.is_data() || !b.data.is_number_integer()) {
            return ErrorAt(e, "slice indices must be integers");
          }
          bounds[i] = b.data.get<int64_t>();
        }
        absl::StatusOr<Value> sliced = Slice(obj, bounds[0], bounds[1], bounds[2]);
        if (!sliced.ok()) return Locate(e, sliced.status());
        return sliced;
      }
      case Expr::Kind::kCall:
        return EvalCall(e);
      case Expr::Kind::kFilter: {
        ASSIGN_OR_RETURN(CallArgs args, EvalArgs(e, 1));
        Value storage;
        ASSIGN_OR_RETURN(const Value* input, EvalBorrowed(*e.args[0], storage));
        absl::StatusOr<Value> v = ApplyFilter(e.name, *input, args, limits_.max_output_bytes);
        if (!v.ok()) return Locate(e, v.status());
        return v;
      }
      case Expr::Kind::kTest: {
        ASSIGN_OR_RETURN(CallArgs args, EvalArgs(e, 1));
        Value storage;
        ASSIGN_OR_RETURN(const Value* input, EvalBorrowed(*e.args[0], storage));
        absl::StatusOr<bool> passed = ApplyTest(e.name, *input, args);
        if (!passed.ok()) return Locate(e, passed.status());
        return Value::Data(*passed != e.negated);
      }
      case Expr::Kind::kUnary: {
        ASSIGN_OR_RETURN(Value v, Eval(*e.args[0]));
        if (e.name == "not") return Value::Data(!Truthy(v));
        if (!v.is_data() || !v.data.is_number()) return ErrorAt(e, "unary operand not a number");
        if (e.name == "+") return v;
        if (v.data.is_number_float()) return Value::Data(-v.data.get<double>());
        return Value::Data(static_cast<int64_t>(0 - static_cast<uint64_t>(v.data.get<int64_t>())));
      }
      case Expr::Kind::kBinary:
        return EvalBinary(e);
      case Expr::Kind::kIf: {
        ASSIGN_OR_RETURN(Value cond, Eval(*e.args[1]));
        if (Truthy(cond)) return Eval(*e.args[0]);
        if (e.args[2]) return Eval(*e.args[2]);
        return Value::Undefined("else branch");
      }
    }
    return ErrorAt(e, "unsupported expression");
  }

  absl::StatusOr<Value> GetItem(const Expr& e, const Value& obj, const Value& key) {
    if (obj.is_undefined()) {
      return ErrorAt(e, absl::StrCat("'", obj.name, "' is undefined"));
    }
    if (obj.kind == Value::Kind::kNamespace) {
      std::string k = ToStr(key);
      if (obj.ns->contains(k)) return Value::Data((*obj.ns)[k]);
      return Value::Undefined(k);
    }
    if (!obj.is_data()) return Value::Undefined(ToStr(key));
    const json& d = obj.data;
    if (d.is_object()) {
      if (key.is_data() && key.data.is_string()) {
        auto it = d.find(key.data.get<std::string>());
        if (it != d.end()) return Value::Data(*it);
      }
      return Value::Undefined(ToStr(key));
    }
    if ((d.is_array() || d.is_string()) && key.is_data() && key.data.is_number_integer()) {
      int64_t n = Length(d);
      int64_t i = key.data.get<int64_t>();
      if (i < 0) i += n;
      if (i < 0 || i >= n) return Value::Undefined(absl::StrCat("index ", key.data.dump()));
      if (d.is_array()) return Value::Data(d[i]);
      return Slice(obj, i, i + 1, 1);
    }
    return Value::Undefined(ToStr(key));
  }

  absl::StatusOr<Value> EvalCall(const Expr& e) {
    const Expr& callee = *e.args[0];
    if (callee.kind == Expr::Kind::kAttr) {
      ASSIGN_OR_RETURN(CallArgs args, EvalArgs(e, 1));
      Value storage;
      ASSIGN_OR_RETURN(const Value* obj, EvalBorrowed(*callee.args[0], storage));
      auto result = CallMethod(*obj, callee.name, args, limits_.max_output_bytes);
      if (result.has_value()) {
        if (!result->ok()) return Locate(e, result->status());
        return std::move(*result);
      }
      ASSIGN_OR_RETURN(Value fn, GetItem(callee, *obj, Value::Data(callee.name)));
      return CallValue(e, fn, args);
    }
    ASSIGN_OR_RETURN(Value fn, Eval(callee));
    ASSIGN_OR_RETURN(CallArgs args, EvalArgs(e, 1));
    return CallValue(e, fn, args);
  }

  absl::StatusOr<Value> CallValue(const Expr& e, const Value& fn, const CallArgs& args) {
    if (fn.kind == Value::Kind::kMacro) return CallMacro(e, *fn.macro, args);
    if (fn.kind != Value::Kind::kBuiltin) {
      return ErrorAt(
          e, absl::StrCat("'", fn.is_undefined() ? fn.name : ToStr(fn), "' is not callable"));
    }
    if (fn.name == "raise_exception") {
      return absl::InvalidArgumentError(args.args.empty() ? "raise_exception called"
                                                          : ToStr(args.args[0]));
    }
    if (fn.name == "namespace") {
      Value ns;
      ns.kind = Value::Kind::kNamespace;
      ns.ns = std::make_shared<json>(json::object());
      for (const Value& a : args.args) {  // namespace(dict) copies the dict
        if (a.is_data() && a.data.is_object()) ns.ns->update(a.data);
      }
      for (const auto& [key, value] : args.kwargs) (*ns.ns)[key] = ToData(value);
      return ns;
    }
    if (fn.name == "range") {
      int64_t bounds[3] = {0, 0, 1};
      if (args.args.empty() || args.args.size() > 3) return ErrorAt(e, "range() takes 1-3 ints");
      for (size_t i = 0; i < args.args.size(); ++i) {
        if (!args.args[i].is_data() || !args.args[i].data.is_number_integer()) {
          return ErrorAt(e, "range() arguments must be integers");
        }
      }
      if (args.args.size() == 1) {
        bounds[1] = args.args[0].data.get<int64_t>();
      } else {
        for (size_t i = 0; i < args.args.size(); ++i) bounds[i] = args.args[i].data.get<int64_t>();
      }
      if (bounds[2] == 0) return ErrorAt(e, "range() step must not be zero");
      json out = json::array();
      // 128-bit so that i += step cannot overflow near the int64 limits.
      for (__int128 i = bounds[0]; bounds[2] > 0 ? i < bounds[1] : i > bounds[1]; i += bounds[2]) {
        if (static_cast<int64_t>(out.size()) >= limits_.max_loop_iterations) {
          return ErrorAt(e, "range() too long");
        }
        out.push_back(static_cast<int64_t>(i));
      }
      return Value::Data(std::move(out));
    }
    if (fn.name == "strftime_now") {
      const Value* format = args.Get("format", 0);
      if (!format || !format->is_data() || !format->data.is_string()) {
        return ErrorAt(e, "strftime_now() needs a format string");
      }
      absl::Time now = limits_.now ? limits_.now() : absl::Now();
      std::string fmt = format->data.get<std::string>();
      if (fmt.size() > 256) return ErrorAt(e, "strftime_now() format too long");
      return Value::Data(absl::FormatTime(fmt, now, absl::UTCTimeZone()));
    }
    return ErrorAt(e, absl::StrCat("unknown function '", fn.name, "'"));
  }

  absl::StatusOr<Value> CallMacro(const Expr& e, const Stmt& macro, const CallArgs& args) {
    if (++call_depth_ > limits_.max_call_depth) {
      return ErrorAt(e, absl::StrCat("macro call depth exceeds ", limits_.max_call_depth));
    }
    Scope scope;
    for (size_t i = 0; i < macro.names.size(); ++i) {
      const Value* arg = args.Get(macro.names[i], static_cast<int>(i));
      if (arg) {
        scope[macro.names[i]] = *arg;
      } else if (macro.exprs[i]) {
        ASSIGN_OR_RETURN(scope[macro.names[i]], Eval(*macro.exprs[i]));
      } else {
        scope[macro.names[i]] = Value::Undefined(macro.names[i]);
      }
    }
    scopes_.push_back(std::move(scope));
    std::string captured;
    absl::StatusOr<Flow> flow = ExecBody(macro.bodies[0], captured);
    scopes_.pop_back();
    --call_depth_;
    if (!flow.ok()) return flow.status();
    return Value::Data(std::move(captured));
  }

  absl::StatusOr<Value> EvalBinary(const Expr& e) {
    const std::string& op = e.name;
    ASSIGN_OR_RETURN(Value lhs, Eval(*e.args[0]));
    if (op == "and") return Truthy(lhs) ? Eval(*e.args[1]) : lhs;
    if (op == "or") return Truthy(lhs) ? lhs : Eval(*e.args[1]);
    ASSIGN_OR_RETURN(Value rhs, Eval(*e.args[1]));
    if (op == "~") return Value::Data(ToStr(lhs) + ToStr(rhs));
    if (op == "==") return Value::Data(Equal(lhs, rhs));
    if (op == "!=") return Value::Data(!Equal(lhs, rhs));
    if (op == "in" || op == "not in") {
      CallArgs container;
      container.args.push_back(rhs);
      if (!rhs.is_data() ||
          !(rhs.data.is_array() || rhs.data.is_object() || rhs.data.is_string())) {
        return ErrorAt(e, "right operand of 'in' is not a container");
      }
      if (rhs.data.is_string() && !(lhs.is_data() && lhs.data.is_string())) {
        return ErrorAt(e, "'in <string>' requires a string as left operand");
      }
      ASSIGN_OR_RETURN(bool found, ApplyTest("in", lhs, container));
      return Value::Data(found == (op == "in"));
    }
    if (lhs.is_undefined() || rhs.is_undefined()) {
      return ErrorAt(e,
                     absl::StrCat("'", lhs.is_undefined() ? lhs.name : rhs.name, "' is undefined"));
    }
    const json& a = lhs.data;
    const json& b = rhs.data;
    if (op == "<" || op == ">" || op == "<=" || op == ">=") {
      bool comparable = (a.is_number() && b.is_number()) || (a.is_string() && b.is_string()) ||
                        (a.is_array() && b.is_array());
      if (!comparable) {
        return ErrorAt(e, absl::StrCat("cannot compare ", a.type_name(), " and ", b.type_name()));
      }
      bool r = op == "<" ? a < b : op == ">" ? b < a : op == "<=" ? !(b < a) : !(a < b);
      return Value::Data(r);
    }
    if (op == "+") {
      if (a.is_string() && b.is_string()) {
        return Value::Data(a.get<std::string>() + b.get<std::string>());
      }
      if (a.is_array() && b.is_array()) {
        if (ApproxBytes(a, limits_.max_output_bytes) + ApproxBytes(b, limits_.max_output_bytes) >
            limits_.max_output_bytes) {
          return ErrorAt(e, "value exceeds the size limit");
        }
        json out = a;
        out.insert(out.end(), b.begin(), b.end());
        return Value::Data(std::move(out));
      }
    }
    if (op == "*" && (a.is_string() || a.is_array()) && b.is_number_integer()) {
      int64_t times = b.get<int64_t>();
      int64_t unit = a.is_string() ? static_cast<int64_t>(a.get_ref<const std::string&>().size())
                                   : ApproxBytes(a, limits_.max_output_bytes);
      if (times > 0 && unit > 0 && times > limits_.max_output_bytes / unit) {
        return ErrorAt(e, "repetition exceeds the size limit");
      }
      json out = a.is_string() ? json("") : json::array();
      for (int64_t i = 0; i < times; ++i) {
        if (a.is_string()) {
          out.get_ref<std::string&>() += a.get<std::string>();
        } else {
          out.insert(out.end(), a.begin(), a.end());
        }
      }
      return Value::Data(std::move(out));
    }
    bool numeric = (a.is_number() || a.is_boolean()) && (b.is_number() || b.is_boolean());
    if (!numeric) {
      return ErrorAt(e, absl::StrCat("unsupported operand types for ", op, ": ", a.type_name(),
                                     " and ", b.type_name()));
    }
    bool ints = !a.is_number_float() && !b.is_number_float();
    double x = a.is_boolean() ? a.get<bool>() : a.get<double>();
    double y = b.is_boolean() ? b.get<bool>() : b.get<double>();
    if ((op == "/" || op == "//" || op == "%") && y == 0) return ErrorAt(e, "division by zero");
    if (ints && op != "/") {
      int64_t i = a.is_boolean() ? a.get<bool>() : a.get<int64_t>();
      int64_t j = b.is_boolean() ? b.get<bool>() : b.get<int64_t>();
      if (op == "+") return Value::Data(static_cast<int64_t>(static_cast<uint64_t>(i) + j));
      if (op == "-") return Value::Data(static_cast<int64_t>(static_cast<uint64_t>(i) - j));
      if (op == "*") return Value::Data(static_cast<int64_t>(static_cast<uint64_t>(i) * j));
      if (j == -1 && i == INT64_MIN) return ErrorAt(e, "integer overflow");
      int64_t q = i / j, r = i % j;
      if (r != 0 && ((r < 0) != (j < 0))) {  // Python floors
        --q;
        r += j;
      }
      return Value::Data(op == "//" ? q : r);
    }
    if (op == "+") return Value::Data(x + y);
    if (op == "-") return Value::Data(x - y);
    if (op == "*") return Value::Data(x * y);
    if (op == "/") return Value::Data(x / y);
    if (op == "//") return Value::Data(std::floor(x / y));
    if (op == "%") return Value::Data(x - y * std::floor(x / y));
    return ErrorAt(e, absl::StrCat("unknown operator ", op));
  }

  static bool Equal(const Value& a, const Value& b) {
    if (a.is_undefined() || b.is_undefined()) return a.is_undefined() && b.is_undefined();
    return ToData(a) == ToData(b);
  }

  const RenderLimits& limits_;
  std::vector<Scope> scopes_;
  std::string out_;
  int64_t iterations_ = 0;
  int depth_ = 0;
  int call_depth_ = 0;
};

}  // namespace

absl::StatusOr<std::string> Render(const Body& body, const json& context,
                                   const RenderLimits& limits) {
  return Interpreter(context, limits).Run(body);
}

}  // namespace pagoda::jinja
