// Recursive-descent parser for the Jinja2 subset in jinja_ast.h.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/chat_template/internal/jinja_ast.h"
#include "common/chat_template/internal/jinja_lexer.h"
#include "common/status_macros.h"

namespace pagoda::jinja {
namespace {

constexpr int kMaxNestingDepth = 128;  // expression and block nesting; bounds parser recursion
// Bounds the height of an expression tree, which left-associative chains (a + b + c ...) grow
// without parser recursion; evaluation and destruction recurse over it.
constexpr int kMaxExprHeight = 256;

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  absl::StatusOr<Body> ParseTemplate() {
    std::string end_tag;
    ASSIGN_OR_RETURN(Body body, ParseBody({}, &end_tag));
    return body;
  }

 private:
  const Token& Peek(size_t k = 0) const { return tokens_[std::min(pos_ + k, tokens_.size() - 1)]; }
  const Token& Next() {
    const Token& t = Peek();
    if (pos_ < tokens_.size() - 1) ++pos_;
    return t;
  }
  bool IsOp(const char* op, size_t k = 0) const {
    return Peek(k).kind == Token::Kind::kOp && Peek(k).text == op;
  }
  bool IsName(const char* name, size_t k = 0) const {
    return Peek(k).kind == Token::Kind::kName && Peek(k).text == name;
  }
  absl::Status ErrorHere(const std::string& message) const {
    return SyntaxError(Peek().line, Peek().column, message);
  }
  absl::Status ExpectOp(const char* op) {
    if (!IsOp(op)) return ErrorHere(absl::StrCat("expected '", op, "'"));
    Next();
    return absl::OkStatus();
  }
  absl::Status ExpectBlockEnd() {
    if (Peek().kind != Token::Kind::kBlockEnd) return ErrorHere("expected end of statement '%}'");
    Next();
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> ExpectName() {
    if (Peek().kind != Token::Kind::kName) return ErrorHere("expected a name");
    return Next().text;
  }

  // Parses statements until one of `end_tags` opens a block; leaves the tag's name in *end_tag
  // with the parser just after it.
  absl::StatusOr<Body> ParseBody(const std::vector<std::string>& end_tags, std::string* end_tag) {
    if (++depth_ > kMaxNestingDepth) return ErrorHere("blocks nested too deeply");
    Body body;
    while (true) {
      const Token& t = Peek();
      if (t.kind == Token::Kind::kEof) {
        if (!end_tags.empty()) {
          return ErrorHere(
              absl::StrCat("unexpected end of template, expected '{% ", end_tags.back(), " %}'"));
        }
        break;
      }
      if (t.kind == Token::Kind::kText) {
        body.push_back(MakeStmt(Stmt::Kind::kText, t));
        body.back()->text = t.text;
        Next();
        continue;
      }
      if (t.kind == Token::Kind::kVarBegin) {
        auto stmt = MakeStmt(Stmt::Kind::kOutput, t);
        Next();
        ASSIGN_OR_RETURN(std::unique_ptr<Expr> e, ParseExpr());
        stmt->exprs.push_back(std::move(e));
        if (Peek().kind != Token::Kind::kVarEnd) return ErrorHere("expected '}}'");
        Next();
        body.push_back(std::move(stmt));
        continue;
      }
      if (t.kind != Token::Kind::kBlockBegin) return ErrorHere("unexpected token");
      const Token& name_tok = Peek(1);
      if (name_tok.kind != Token::Kind::kName) {
        Next();
        return ErrorHere("expected a statement name");
      }
      for (const std::string& end : end_tags) {
        if (name_tok.text == end) {
          Next();
          Next();
          *end_tag = end;
          --depth_;
          return body;
        }
      }
      Next();
      ASSIGN_OR_RETURN(std::unique_ptr<Stmt> stmt, ParseStatement());
      body.push_back(std::move(stmt));
    }
    --depth_;
    return body;
  }

  std::unique_ptr<Stmt> MakeStmt(Stmt::Kind kind, const Token& at) {
    auto s = std::make_unique<Stmt>();
    s->kind = kind;
    s->line = at.line;
    s->column = at.column;
    return s;
  }

  absl::StatusOr<std::unique_ptr<Stmt>> ParseStatement() {
    const Token name = Next();
    const std::string& kw = name.text;
    std::string end;
    if (kw == "if") {
      auto stmt = MakeStmt(Stmt::Kind::kIf, name);
      while (true) {
        ASSIGN_OR_RETURN(std::unique_ptr<Expr> cond, ParseExpr());
        stmt->exprs.push_back(std::move(cond));
        RETURN_IF_ERROR(ExpectBlockEnd());
        ASSIGN_OR_RETURN(Body body, ParseBody({"elif", "else", "endif"}, &end));
        stmt->bodies.push_back(std::move(body));
        if (end != "elif") break;
      }
      if (end == "else") {
        RETURN_IF_ERROR(ExpectBlockEnd());
        ASSIGN_OR_RETURN(Body body, ParseBody({"endif"}, &end));
        stmt->bodies.push_back(std::move(body));
      } else {
        stmt->bodies.emplace_back();
      }
      RETURN_IF_ERROR(ExpectBlockEnd());
      return stmt;
    }
    if (kw == "for") {
      auto stmt = MakeStmt(Stmt::Kind::kFor, name);
      do {
        ASSIGN_OR_RETURN(std::string target, ExpectName());
        stmt->names.push_back(std::move(target));
      } while (IsOp(",") && (Next(), true));
      if (!IsName("in")) return ErrorHere("expected 'in'");
      Next();
      ASSIGN_OR_RETURN(std::unique_ptr<Expr> iter, ParseExpr(/*allow_if=*/false));
      stmt->exprs.push_back(std::move(iter));
      std::unique_ptr<Expr> filter;
      if (IsName("if")) {
        Next();
        ASSIGN_OR_RETURN(filter, ParseExpr(/*allow_if=*/false));
      }
      stmt->exprs.push_back(std::move(filter));
      if (IsName("recursive")) return ErrorHere("recursive loops are not supported");
      RETURN_IF_ERROR(ExpectBlockEnd());
      ASSIGN_OR_RETURN(Body body, ParseBody({"else", "endfor"}, &end));
      stmt->bodies.push_back(std::move(body));
      Body else_body;
      if (end == "else") {
        RETURN_IF_ERROR(ExpectBlockEnd());
        ASSIGN_OR_RETURN(else_body, ParseBody({"endfor"}, &end));
      }
      stmt->bodies.push_back(std::move(else_body));
      RETURN_IF_ERROR(ExpectBlockEnd());
      return stmt;
    }
    if (kw == "set") {
      auto stmt = MakeStmt(Stmt::Kind::kSet, name);
      ASSIGN_OR_RETURN(std::string target, ExpectName());
      stmt->names.push_back(std::move(target));
      if (IsOp(".")) {
        Next();
        ASSIGN_OR_RETURN(stmt->attr, ExpectName());
      }
      if (Peek().kind == Token::Kind::kBlockEnd && stmt->attr.empty()) {
        Next();
        stmt->kind = Stmt::Kind::kSetBlock;
        ASSIGN_OR_RETURN(Body body, ParseBody({"endset"}, &end));
        stmt->bodies.push_back(std::move(body));
        RETURN_IF_ERROR(ExpectBlockEnd());
        return stmt;
      }
      RETURN_IF_ERROR(ExpectOp("="));
      ASSIGN_OR_RETURN(std::unique_ptr<Expr> value, ParseExpr());
      stmt->exprs.push_back(std::move(value));
      RETURN_IF_ERROR(ExpectBlockEnd());
      return stmt;
    }
    if (kw == "macro") {
      auto stmt = MakeStmt(Stmt::Kind::kMacro, name);
      ASSIGN_OR_RETURN(stmt->text, ExpectName());
      RETURN_IF_ERROR(ExpectOp("("));
      while (!IsOp(")")) {
        ASSIGN_OR_RETURN(std::string param, ExpectName());
        stmt->names.push_back(std::move(param));
        std::unique_ptr<Expr> default_value;
        if (IsOp("=")) {
          Next();
          ASSIGN_OR_RETURN(default_value, ParseExpr());
        }
        stmt->exprs.push_back(std::move(default_value));
        if (!IsOp(",")) break;
        Next();
      }
      RETURN_IF_ERROR(ExpectOp(")"));
      RETURN_IF_ERROR(ExpectBlockEnd());
      ASSIGN_OR_RETURN(Body body, ParseBody({"endmacro"}, &end));
      stmt->bodies.push_back(std::move(body));
      RETURN_IF_ERROR(ExpectBlockEnd());
      return stmt;
    }
    if (kw == "break" || kw == "continue") {
      auto stmt = MakeStmt(kw == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue, name);
      RETURN_IF_ERROR(ExpectBlockEnd());
      return stmt;
    }
    if (kw == "generation") {  // transformers' assistant-mask extension; renders its body
      auto stmt = MakeStmt(Stmt::Kind::kScope, name);
      RETURN_IF_ERROR(ExpectBlockEnd());
      ASSIGN_OR_RETURN(Body body, ParseBody({"endgeneration"}, &end));
      stmt->bodies.push_back(std::move(body));
      RETURN_IF_ERROR(ExpectBlockEnd());
      return stmt;
    }
    return SyntaxError(name.line, name.column, absl::StrCat("unknown statement '", kw, "'"));
  }

  std::unique_ptr<Expr> MakeExpr(Expr::Kind kind, const Token& at) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = at.line;
    e->column = at.column;
    return e;
  }
  std::unique_ptr<Expr> MakeBinary(const Token& op, std::unique_ptr<Expr> lhs,
                                   std::unique_ptr<Expr> rhs) {
    auto e = MakeExpr(Expr::Kind::kBinary, op);
    e->name = op.text;
    e->args.push_back(std::move(lhs));
    e->args.push_back(std::move(rhs));
    return e;
  }

  // Sets e's height from its children; an error once the tree is too tall.
  absl::Status SetHeight(Expr& e) const {
    int height = 0;
    for (const auto& child : e.args) {
      if (child) height = std::max(height, child->height);
    }
    for (const auto& kw : e.kwargs) height = std::max(height, kw.second->height);
    e.height = height + 1;
    if (e.height > kMaxExprHeight) {
      return SyntaxError(e.line, e.column, "expression nested too deeply");
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::unique_ptr<Expr>> ParseExpr(bool allow_if = true) {
    if (++depth_ > kMaxNestingDepth) return ErrorHere("expression nested too deeply");
    ASSIGN_OR_RETURN(std::unique_ptr<Expr> e, ParseOr());
    while (allow_if && IsName("if")) {
      auto cond_expr = MakeExpr(Expr::Kind::kIf, Next());
      ASSIGN_OR_RETURN(std::unique_ptr<Expr> cond, ParseOr());
      std::unique_ptr<Expr> otherwise;
      if (IsName("else")) {
        Next();
        ASSIGN_OR_RETURN(otherwise, ParseExpr());
      }
      cond_expr->args.push_back(std::move(e));
      cond_expr->args.push_back(std::move(cond));
      cond_expr->args.push_back(std::move(otherwise));
      RETURN_IF_ERROR(SetHeight(*cond_expr));
      e = std::move(cond_expr);
    }
    --depth_;
    return e;
  }

  absl::StatusOr<std::unique_ptr<Expr>> ParseOr() {
    ASSIGN_OR_RETURN(std::unique_ptr<Expr> e, ParseAnd());
    while (IsName("or")) {
      const Token op = Next();
      ASSIGN_OR_RETURN(std::unique_ptr<Expr> rhs, ParseAnd());
      e = MakeBinary(op, std::move(e), std::move(rhs));
      RETURN_IF_ERROR(SetHeight(*e));
    }
    return e;
  }

  absl::StatusOr<std::unique_ptr<Expr>> ParseAnd() {
    ASSIGN_OR_RETURN(std::unique_ptr<Expr> e, ParseNot());
    while (IsName("and")) {
      const Token op = Next();
      ASSIGN_OR_RETURN(std::unique_ptr<Expr> rhs, ParseNot());
      e = MakeBinary(op, std::move(e), std::move(rhs));
      RETURN_IF_ERROR(SetHeight(*e));
    }
    return e;
  }

  absl::StatusOr<std::unique_ptr<Expr>> ParseNot() {
    if (IsName("not")) {
      if (++depth_ > kMaxNestingDepth) return ErrorHere("expression nested too deeply");
      auto e = MakeExpr(Expr::Kind::kUnary, Next());
      e->name = "not";
      ASSIGN_OR_RETURN(std::unique_ptr<Expr> operand, ParseNot());
      e->args.push_back(std::move(operand));
      RETURN_IF_ERROR(SetHeight(*e));
      --depth_;
      return e;
    }
    return ParseCompare();
  }

  absl::StatusOr<std::unique_ptr<Expr>> ParseCompare() {
    ASSIGN_OR_RETURN(std::unique_ptr<Expr> e, ParseMath1());
    while (true) {
      Token op = Peek();
      if (op.kind == Token::Kind::kOp && (op.text == "==" || op.text == "!=" || op.text == "<" ||
                                          op.text == ">" || op.text == "<=" || op.text == ">=")) {
        Next();
      } else if (IsName("in")) {
        Next();
      } else if (IsName("not") && IsName("in", 1)) {
        Next();
        Next();
        op.text = "not in";
      } else {
        break;
      }
      ASSIGN_OR_RETURN(std::unique_ptr<Expr> rhs, ParseMath1());
      e = MakeBinary(op, std::move(e), std::move(rhs));
      RETURN_IF_ERROR(SetHeight(*e));
    }
    return e;
  }

  absl::StatusOr<std::unique_ptr<Expr>> ParseMath1() {
    ASSIGN_OR_RETURN(std::unique_ptr<Expr> e, ParseConcat());
    while (IsOp("+") || IsOp("-")) {
      const Token op = Next();
      ASSIGN_OR_RETURN(std::unique_ptr<Expr> rhs, ParseConcat());
      e = MakeBinary(op, std::move(e), std::move(rhs));
      RETURN_IF_ERROR(SetHeight(*e));
    }
    return e;
  }

  absl::StatusOr<std::unique_ptr<Expr>> ParseConcat() {
    ASSIGN_OR_RETURN(std::unique_ptr<Expr> e, ParseMath2());
    while (IsOp("~")) {
      const Token op = Next();
      ASSIGN_OR_RETURN(std::unique_ptr<Expr> rhs, ParseMath2());
      e = MakeBinary(op, std::move(e), std::move(rhs));
      RETURN_IF_ERROR(SetHeight(*e));
    }
    return e;
  }

  absl::StatusOr<std::unique_ptr<Expr>> ParseMath2() {
    ASSIGN_OR_RETURN(std::unique_ptr<Expr> e, ParseUnary());
    while (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%")) {
      const Token op = Next();
      ASSIGN_OR_RETURN(std::unique_ptr<Expr> rhs, ParseUnary());
      e = MakeBinary(op, std::move(e), std::move(rhs));
      RETURN_IF_ERROR(SetHeight(*e));
    }
    return e;
  }

  absl::StatusOr<std::unique_ptr<Expr>> ParseUnary() {
    if (IsOp("-") || IsOp("+")) {
      if (++depth_ > kMaxNestingDepth) return ErrorHere("expression nested too deeply");
      auto e = MakeExpr(Expr::Kind::kUnary, Peek());
      e->name = Next().text;
      ASSIGN_OR_RETURN(std::unique_ptr<Expr> operand, ParseUnary());
      e->args.push_back(std::move(operand));
      RETURN_IF_ERROR(SetHeight(*e));
      --depth_;
      return e;
    }
    ASSIGN_OR_RETURN(std::unique_ptr<Expr> e, ParsePrimary());
    ASSIGN_OR_RETURN(e, ParsePostfix(std::move(e)));
    while (true) {
      if (IsOp("|")) {
        auto f = MakeExpr(Expr::Kind::kFilter, Next());
        ASSIGN_OR_RETURN(f->name, ExpectName());
        f->args.push_back(std::move(e));
        if (IsOp("(")) RETURN_IF_ERROR(ParseArgs(f.get()));
        RETURN_IF_ERROR(SetHeight(*f));
        e = std::move(f);
      } else if (IsName("is")) {
        auto t = MakeExpr(Expr::Kind::kTest, Next());
        if (IsName("not")) {
          Next();
          t->negated = true;
        }
        if (Peek().kind != Token::Kind::kName) return ErrorHere("expected a test name");
        t->name = Next().text;
        t->args.push_back(std::move(e));
        if (IsOp("(")) {
          RETURN_IF_ERROR(ParseArgs(t.get()));
        } else if (Peek().kind == Token::Kind::kString || Peek().kind == Token::Kind::kInt ||
                   Peek().kind == Token::Kind::kFloat ||
                   (Peek().kind == Token::Kind::kName && !IsName("and") && !IsName("or") &&
                    !IsName("if") && !IsName("else") && !IsName("is") && !IsName("in") &&
                    !IsName("not"))) {
          ASSIGN_OR_RETURN(std::unique_ptr<Expr> arg, ParsePrimary());
          t->args.push_back(std::move(arg));
        }
        RETURN_IF_ERROR(SetHeight(*t));
        e = std::move(t);
      } else {
        break;
      }
      ASSIGN_OR_RETURN(e, ParsePostfix(std::move(e)));
    }
    return e;
  }

  absl::Status ParseArgs(Expr* call) {
    RETURN_IF_ERROR(ExpectOp("("));
    while (!IsOp(")")) {
      if (Peek().kind == Token::Kind::kName && IsOp("=", 1)) {
        std::string key = Next().text;
        Next();
        ASSIGN_OR_RETURN(std::unique_ptr<Expr> value, ParseExpr());
        call->kwargs.emplace_back(std::move(key), std::move(value));
      } else {
        ASSIGN_OR_RETURN(std::unique_ptr<Expr> value, ParseExpr());
        call->args.push_back(std::move(value));
      }
      if (!IsOp(",")) break;
      Next();
    }
    return ExpectOp(")");
  }

  absl::StatusOr<std::unique_ptr<Expr>> ParsePostfix(std::unique_ptr<Expr> e) {
    while (true) {
      if (IsOp(".")) {
        auto a = MakeExpr(Expr::Kind::kAttr, Next());
        if (Peek().kind == Token::Kind::kInt) {  // foo.0 is foo[0] in Jinja
          a->kind = Expr::Kind::kItem;
          auto index = MakeExpr(Expr::Kind::kLiteral, Peek());
          index->literal = Next().int_value;
          a->args.push_back(std::move(e));
          a->args.push_back(std::move(index));
        } else {
          ASSIGN_OR_RETURN(a->name, ExpectName());
          a->args.push_back(std::move(e));
        }
        RETURN_IF_ERROR(SetHeight(*a));
        e = std::move(a);
      } else if (IsOp("[")) {
        auto item = MakeExpr(Expr::Kind::kItem, Next());
        item->args.push_back(std::move(e));
        std::unique_ptr<Expr> parts[3];
        int colons = 0;
        while (true) {
          if (IsOp(":")) {
            if (++colons > 2) return ErrorHere("too many ':' in slice");
            Next();
          } else if (IsOp("]")) {
            break;
          } else {
            if (parts[colons]) return ErrorHere("expected ']'");
            ASSIGN_OR_RETURN(parts[colons], ParseExpr());
          }
        }
        Next();
        if (colons == 0) {
          if (!parts[0]) return ErrorHere("empty subscript");
          item->args.push_back(std::move(parts[0]));
        } else {
          item->kind = Expr::Kind::kSlice;
          for (auto& p : parts) item->args.push_back(std::move(p));
        }
        RETURN_IF_ERROR(SetHeight(*item));
        e = std::move(item);
      } else if (IsOp("(")) {
        auto call = MakeExpr(Expr::Kind::kCall, Peek());
        call->args.push_back(std::move(e));
        RETURN_IF_ERROR(ParseArgs(call.get()));
        RETURN_IF_ERROR(SetHeight(*call));
        e = std::move(call);
      } else {
        return e;
      }
    }
  }

  absl::StatusOr<std::unique_ptr<Expr>> ParsePrimary() {
    const Token& t = Peek();
    auto literal = [&](nlohmann::json value) {
      auto e = MakeExpr(Expr::Kind::kLiteral, t);
      e->literal = std::move(value);
      Next();
      return e;
    };
    switch (t.kind) {
      case Token::Kind::kString: {
        std::string s = t.text;
        Next();
        while (Peek().kind == Token::Kind::kString) s += Next().text;  // "a" "b" concatenates
        auto e = MakeExpr(Expr::Kind::kLiteral, t);
        e->literal = std::move(s);
        return e;
      }
      case Token::Kind::kInt:
        return literal(t.int_value);
      case Token::Kind::kFloat:
        return literal(t.float_value);
      case Token::Kind::kName: {
        if (t.text == "true" || t.text == "True") return literal(true);
        if (t.text == "false" || t.text == "False") return literal(false);
        if (t.text == "none" || t.text == "None") return literal(nullptr);
        auto e = MakeExpr(Expr::Kind::kName, t);
        e->name = t.text;
        Next();
        return e;
      }
      case Token::Kind::kOp:
        break;
      default:
        return ErrorHere("expected an expression");
    }
    if (t.text == "(") {
      const Token open = Next();
      ASSIGN_OR_RETURN(std::unique_ptr<Expr> e, ParseExpr());
      if (IsOp(",")) {  // a tuple; represented as a list
        auto list = MakeExpr(Expr::Kind::kList, open);
        list->args.push_back(std::move(e));
        while (IsOp(",")) {
          Next();
          if (IsOp(")")) break;
          ASSIGN_OR_RETURN(std::unique_ptr<Expr> item, ParseExpr());
          list->args.push_back(std::move(item));
        }
        RETURN_IF_ERROR(SetHeight(*list));
        e = std::move(list);
      }
      RETURN_IF_ERROR(ExpectOp(")"));
      return e;
    }
    if (t.text == "[" || t.text == "{") {
      bool is_dict = t.text == "{";
      auto e = MakeExpr(is_dict ? Expr::Kind::kDict : Expr::Kind::kList, t);
      Next();
      const char* close = is_dict ? "}" : "]";
      while (!IsOp(close)) {
        ASSIGN_OR_RETURN(std::unique_ptr<Expr> item, ParseExpr());
        e->args.push_back(std::move(item));
        if (is_dict) {
          RETURN_IF_ERROR(ExpectOp(":"));
          ASSIGN_OR_RETURN(std::unique_ptr<Expr> value, ParseExpr());
          e->args.push_back(std::move(value));
        }
        if (!IsOp(",")) break;
        Next();
      }
      RETURN_IF_ERROR(ExpectOp(close));
      RETURN_IF_ERROR(SetHeight(*e));
      return e;
    }
    return ErrorHere(absl::StrCat("unexpected '", t.text, "'"));
  }

  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace

absl::StatusOr<Body> Parse(const std::string& source) {
  // Jinja's keep_trailing_newline is off: one newline at the very end is dropped.
  std::string trimmed = source;
  if (!trimmed.empty() && trimmed.back() == '\n') {
    trimmed.pop_back();
    if (!trimmed.empty() && trimmed.back() == '\r') trimmed.pop_back();
  }
  ASSIGN_OR_RETURN(std::vector<Token> tokens, Lex(trimmed));
  return Parser(std::move(tokens)).ParseTemplate();
}

}  // namespace pagoda::jinja
