// The syntax tree of the Jinja2 subset that chat templates use, and the parser that builds it.
//
// Lexing follows the environment transformers renders chat templates in: trim_blocks and
// lstrip_blocks are on, `{%-`/`-%}` (and the `{{`/`{#` forms) strip whitespace, `{%+` keeps it.
//
//   ASSIGN_OR_RETURN(std::vector<std::unique_ptr<jinja::Stmt>> body, jinja::Parse(source));
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace pagoda::jinja {

struct Expr {
  enum class Kind {
    kLiteral,  // literal
    kName,     // name
    kList,     // args: items
    kDict,     // args: key0, value0, key1, value1, ...
    kAttr,     // args[0].name
    kItem,     // args[0][args[1]]
    kSlice,    // args[0][args[1]:args[2]:args[3]], any of 1..3 may be null
    kCall,     // args[0](args[1..], kwargs)
    kFilter,   // args[0] | name(args[1..], kwargs)
    kTest,     // args[0] is [not] name(args[1..])
    kUnary,    // name args[0]; name is "not", "-" or "+"
    kBinary,   // args[0] name args[1]
    kIf,       // args[0] if args[1] else args[2]; args[2] may be null
  };
  Kind kind = Kind::kLiteral;
  int line = 0;
  int column = 0;
  nlohmann::json literal;
  std::string name;
  std::vector<std::unique_ptr<Expr>> args;
  std::vector<std::pair<std::string, std::unique_ptr<Expr>>> kwargs;
  bool negated = false;  // kTest: `is not`
  int height = 1;        // of this subtree; the parser bounds it
};

struct Stmt;
using Body = std::vector<std::unique_ptr<Stmt>>;

struct Stmt {
  enum class Kind {
    kText,      // text
    kOutput,    // {{ exprs[0] }}
    kIf,        // exprs: conditions; bodies: one per condition, then the else body
    kFor,       // names: targets; exprs[0]: iterable, exprs[1]: filter or null;
                // bodies[0]: body, bodies[1]: else
    kSet,       // names[0] (= target), attr (ns.attr or empty), exprs[0]: value
    kSetBlock,  // names[0]; bodies[0] rendered into the variable
    kMacro,     // text: name; names: parameters; exprs: defaults (null where none); bodies[0]
    kBreak,
    kContinue,
    kScope,  // bodies[0], rendered in place ({% generation %})
  };
  Kind kind = Kind::kText;
  int line = 0;
  int column = 0;
  std::string text;
  std::string attr;
  std::vector<std::string> names;
  std::vector<std::unique_ptr<Expr>> exprs;
  std::vector<Body> bodies;
};

/// Parses template source; InvalidArgument naming the line and column of a syntax error.
absl::StatusOr<Body> Parse(const std::string& source);

}  // namespace pagoda::jinja
