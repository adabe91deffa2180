// Regular expressions and choice lists as grammars (vLLM's guided_regex / guided_choice, and a
// JSON Schema string's `pattern`).
//
// The regex subset is ECMAScript's without what a grammar cannot express: literals (UTF-8), `.`
// (any character but \n and \r), classes [...] with ranges and ^ negation, \d \D \w \W \s \S,
// escapes \n \r \t \f \v \0 \xHH \uHHHH \u{H...} and escaped metacharacters, groups ( ),
// (?: ) and (?<name> ), alternation, quantifiers * + ? {m} {m,} {m,n} (lazy forms accepted:
// they match the same strings), and ^ / $ only at the ends (a whole-string match either way).
// Backreferences, lookarounds, \b and flags are InvalidArgument naming the construct.
//
//   ASSIGN_OR_RETURN(Grammar g, RegexToGrammar(R"(\d{3}-[A-Z]{2,4})"));
//   ASSIGN_OR_RETURN(Grammar yes_no, ChoiceToGrammar({"yes", "no"}));
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "structured/grammar.h"

namespace pagoda::structured {

inline constexpr size_t kMaxRegexBytes = 1 << 16;

/// The regex as a GBNF expression (groups in parentheses; no rule definitions needed). With
/// `inside_json_string` it matches the JSON-escaped text instead, as it appears between the
/// quotes of a JSON string (", \ and control characters escaped).
absl::StatusOr<std::string> RegexToGbnfExpression(std::string_view pattern,
                                                  bool inside_json_string);

absl::StatusOr<Grammar> RegexToGrammar(std::string_view pattern);

/// Exactly one of `choices` (at least one; each UTF-8).
absl::StatusOr<Grammar> ChoiceToGrammar(const std::vector<std::string>& choices);

}  // namespace pagoda::structured
