// A parser of llama.cpp's GBNF grammar syntax into the grammar IR.
//
//   root   ::= object                       # a rule; the start rule is `root` by default
//   object ::= "{" ws ( pair ( "," ws pair )* )? "}"
//   pair   ::= [a-z_]+ ":" ws ( "é" | [^"\\\x00-\x1F] | [\u4e00-\u9fff]{1,3} )
//   ws     ::= [ \t\n]{0,8}
//
// Literals "..." and classes [...] (ranges, ^ negation) hold UTF-8 text and escapes \n \r \t
// \\ \" \' \[ \] \- \^ \xHH \uHHHH \UHHHHHHHH (each a code point, as llama.cpp reads them); `.` is
// any code point; postfix * + ? {m} {m,} {m,n}; ( ) groups; # comments to the end of the line.
// A rule ends where the next `name ::=` starts, so alternatives may span lines.
// Errors are InvalidArgument and say "GBNF line L column C: what is wrong".
//
//   ASSIGN_OR_RETURN(Grammar g, ParseGbnf(R"(root ::= "yes" | "no")"));
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "structured/grammar.h"

namespace pagoda::structured {

/// Limits on an untrusted grammar text.
inline constexpr size_t kMaxGbnfBytes = 1 << 20;
inline constexpr int kMaxGbnfNesting = 64;
inline constexpr int kMaxGbnfRepetition = 1000;  // m and n of {m,n}

absl::StatusOr<Grammar> ParseGbnf(std::string_view text, std::string_view root_rule = "root");

/// `text` (UTF-8) as a GBNF literal: quoted, with ", \ and control characters escaped.
std::string GbnfLiteral(std::string_view text);

}  // namespace pagoda::structured
