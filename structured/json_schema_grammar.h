// JSON Schema (the subset OpenAI's structured outputs accept, and more) and free JSON as
// grammars, by way of GBNF text.
//
// Supported: type (object, array, string, number, integer, boolean, null, and lists of them
// such as ["string", "null"]); properties / required (the properties in schema order, optional
// ones skippable); additionalProperties (false, true or a schema; absent means false, as in
// OpenAI's strict mode; extra keys are unescaped strings other than the named keys); items /
// prefixItems / minItems / maxItems; enum / const; anyOf / oneOf (as anyOf); allOf of one schema;
// $ref into $defs / definitions (recursion included) or "#"; string minLength / maxLength,
// pattern (RegexToGbnfExpression, as a whole-string match) and format date-time / date / time /
// email / uuid; integer minimum / maximum / exclusiveMinimum / exclusiveMaximum (an exact
// digit-range grammar). Annotations (title, description, default, examples, $schema, $id,
// $comment, deprecated, readOnly, writeOnly) are ignored. Every other keyword is InvalidArgument
// naming it; nothing is ignored silently.
//
// Bounds, so that a model cannot loop where JSON allows repetition without end: at each place
// JSON allows whitespace, nothing, one space, or one newline and at most `max_whitespace` spaces
// or tabs of indentation (0: compact JSON; as llama.cpp's JSON grammars),
// integers of at most 19 digits, numbers of at most 19 + 19 digits and a 3-digit exponent.
//
//   ASSIGN_OR_RETURN(Grammar g, JsonSchemaToGrammar(R"({"type": "object", ...})"));
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "structured/grammar.h"

namespace pagoda::structured {

struct JsonSchemaOptions {
  int max_whitespace = 16;  // indentation after a newline where JSON allows whitespace
};

inline constexpr size_t kMaxJsonSchemaBytes = 1 << 20;
inline constexpr int kMaxJsonSchemaDepth = 64;

/// The schema (JSON text) as GBNF whose start rule is `root`.
absl::StatusOr<std::string> JsonSchemaToGbnf(std::string_view schema_json,
                                             const JsonSchemaOptions& options = {});
absl::StatusOr<Grammar> JsonSchemaToGrammar(std::string_view schema_json,
                                            const JsonSchemaOptions& options = {});
/// Any JSON object (response_format json_object).
absl::StatusOr<Grammar> JsonObjectGrammar(const JsonSchemaOptions& options = {});

}  // namespace pagoda::structured
