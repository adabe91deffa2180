#include "structured/json_schema_grammar.h"

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "structured/grammar_matcher.h"

namespace pagoda::structured {
namespace {

using ::testing::HasSubstr;

// Checks each text against the schema's grammar: `accepted` must match, `rejected` must not.
void Check(const std::string& schema, const std::vector<std::string>& accepted,
           const std::vector<std::string>& rejected, const JsonSchemaOptions& options = {}) {
  absl::StatusOr<Grammar> g = JsonSchemaToGrammar(schema, options);
  ASSERT_TRUE(g.ok()) << schema << ": " << g.status();
  auto shared = std::make_shared<const Grammar>(*std::move(g));
  for (const std::string& text : accepted) {
    GrammarMatcher m(shared);
    EXPECT_TRUE(m.AcceptString(text) && m.IsAccepting()) << schema << " should accept " << text;
  }
  for (const std::string& text : rejected) {
    GrammarMatcher m(shared);
    EXPECT_FALSE(m.AcceptString(text) && m.IsAccepting()) << schema << " should reject " << text;
  }
}

void ExpectError(const std::string& schema, const std::string& message) {
  absl::StatusOr<Grammar> g = JsonSchemaToGrammar(schema);
  ASSERT_FALSE(g.ok()) << schema;
  EXPECT_EQ(g.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(g.status().message(), HasSubstr(message)) << schema;
}

TEST(JsonSchemaGrammar, PrimitiveTypes) {
  Check(R"({"type": "string"})", {R"("")", R"("a\"b\\ \u00e9 日本")"},
        {R"(")", R"("a"b")", "\"\x01\"", R"('a')"});
  Check(R"({"type": "integer"})", {"0", "-12", "1234567890"}, {"01", "1.5", "-", "+1", "1e3"});
  Check(R"({"type": "number"})", {"0", "-1.25", "3e10", "2.5E-3"}, {"1.", ".5", "01", "--1"});
  Check(R"({"type": "boolean"})", {"true", "false"}, {"True", "1"});
  Check(R"({"type": "null"})", {"null"}, {"nil", ""});
  Check(R"({"type": ["string", "null"]})", {"null", R"("x")"}, {"1"});
  Check("{}", {R"({"a": [1, {"b": null}], "c": "d"})", "[]", "-0.5", R"("s")"}, {"{", "[1,]"});
}

TEST(JsonSchemaGrammar, ATypeListAppliesEachKeywordToItsOwnType) {
  // OpenAI's nullable field: the string's bounds bind the string, not the null.
  Check(R"({"type": ["string", "null"], "maxLength": 3})", {"null", R"("abc")", R"("")"},
        {R"("abcd")", "0"});
  Check(R"({"type": ["null", "string"], "pattern": "^[a-z]+$"})", {"null", R"("abc")"},
        {R"("A")", R"("")"});
  Check(R"({"type": ["integer", "string"], "minimum": 2, "maximum": 5, "minLength": 2})",
        {"2", "5", R"("ab")"}, {"1", "6", R"("a")"});
  Check(R"({"type": ["array", "null"], "items": {"type": "integer"}, "maxItems": 1})",
        {"null", "[]", "[7]"}, {"[1, 2]", R"(["x"])"});
  // A keyword no listed type takes is still an error, naming it.
  ExpectError(R"({"type": ["integer", "null"], "maxLength": 3})",
              "'maxLength' is not supported for type 'integer'");
  ExpectError(R"({"type": ["number", "null"], "minimum": 3})",
              "'minimum' is not supported for type 'number'");
}

TEST(JsonSchemaGrammar, PropertiesInOrderWithOptionalOnes) {
  const std::string schema = R"({"type": "object", "properties": {
      "a": {"type": "integer"}, "b": {"type": "string"}, "c": {"type": "boolean"}},
      "required": ["b"]})";
  Check(schema,
        {R"({"b": "x"})", R"({"a": 1, "b": "x"})", R"({"b": "x", "c": true})",
         R"({"a":1,"b":"x","c":false})", "{\n  \"a\": 1,\n  \"b\": \"x\"\n}"},
        {R"({})", R"({"a": 1})", R"({"b": "x", "a": 1})", R"({"b": "x",})", R"({, "b": "x"})",
         R"({"b": "x", "d": 1})", R"({"b": 1})"});
}

TEST(JsonSchemaGrammar, WhitespaceIsBounded) {
  const std::string schema = R"({"type": "object", "properties": {"a": {"type": "integer"}},
      "required": ["a"]})";
  // Nothing, one space, or a newline and up to 16 spaces or tabs: pretty-printed JSON.
  Check(schema,
        {R"({"a":1})", R"({ "a": 1 })", "{\n" + std::string(16, ' ') + "\"a\":\n\t1\n}",
         "{\n\t\t\"a\": 1}"},
        {"{\n" + std::string(17, ' ') + "\"a\": 1}", "{  \"a\": 1}", "{\n\n\"a\": 1}",
         "{ \n\"a\": 1}", "{\t\"a\": 1}"});
  Check(schema, {R"({"a":1})"}, {R"({"a": 1})", R"({ "a":1})"}, {.max_whitespace = 0});
}

TEST(JsonSchemaGrammar, AdditionalProperties) {
  Check(R"({"type": "object", "properties": {"a": {"type": "integer"}}})", {"{}", R"({"a": 1})"},
        {R"({"z": 1})"});  // absent: no additional properties (OpenAI strict)
  Check(R"({"type": "object", "properties": {"a": {"type": "integer"}},
             "additionalProperties": {"type": "string"}})",
        {R"({"a": 1, "x": "y", "ab": "z"})", R"({"b": "c"})", R"({"": "e"})"},
        {R"({"x": 1})", R"({"a": "s"})", R"({"x": "y", "a": 1})"});
  Check(R"({"type": "object", "additionalProperties": true})", {R"({"x": [1, {"y": null}]})"}, {});
  // A named key with a quote: extra keys are unescaped, so neither it nor a raw quote can appear.
  Check(R"({"type": "object", "properties": {"a\"b": {"type": "integer"}},
             "additionalProperties": {"type": "integer"}})",
        {R"({"a\"b": 1})", R"({"a": 2})", R"({"ab": 3})"}, {R"({"a"b": 1})"});
}

TEST(JsonSchemaGrammar, Arrays) {
  Check(R"({"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 3})",
        {"[1]", "[1, 2, 3]"}, {"[]", "[1, 2, 3, 4]", R"(["a"])", "[1,]"});
  Check(R"({"type": "array", "items": {"type": "integer"}})", {"[]", "[1,2]"}, {"[1 2]"});
  Check(R"({"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}],
             "items": false})",
        {"[]", R"(["a"])", R"(["a", 1])"}, {R"(["a", 1, 2])", R"([1])"});
  Check(R"({"type": "array", "prefixItems": [{"type": "string"}], "items": {"type": "boolean"},
             "minItems": 2})",
        {R"(["a", true])", R"(["a", true, false])"}, {R"(["a"])", R"(["a", 1])"});
}

TEST(JsonSchemaGrammar, EnumConstAnyOfOneOfAllOf) {
  Check(R"({"enum": ["red", 1, null, {"k": [true]}]})",
        {R"("red")", "1", "null", R"({"k":[true]})"}, {R"("blue")", "2"});
  Check(R"({"type": "string", "enum": ["a", 1]})", {R"("a")"}, {"1"});
  Check(R"({"const": "fixed"})", {R"("fixed")"}, {R"("other")"});
  Check(R"({"anyOf": [{"type": "integer"}, {"type": "string", "maxLength": 2}]})", {"5", R"("ab")"},
        {R"("abc")", "true"});
  Check(R"({"oneOf": [{"type": "boolean"}, {"type": "null"}]})", {"true", "null"}, {"0"});
  Check(R"({"allOf": [{"type": "integer", "maximum": 3}]})", {"3"}, {"4"});
}

TEST(JsonSchemaGrammar, RefsIncludingRecursion) {
  const std::string schema = R"({
    "$defs": {"node": {"type": "object", "properties": {
        "value": {"type": "integer"},
        "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
      "required": ["value"]}},
    "$ref": "#/$defs/node"})";
  Check(schema,
        {R"({"value": 1})",
         R"({"value": 1, "children": [{"value": 2, "children": [{"value": 3}]}]})"},
        {R"({"value": 1, "children": [{}]})", R"({"children": []})"});
  Check(R"({"definitions": {"a~b/c": {"type": "boolean"}}, "type": "array",
             "items": {"$ref": "#/definitions/a~0b~1c"}})",
        {"[true]"}, {"[1]"});
  Check(R"({"type": "object", "properties": {"self": {"$ref": "#"}}})",
        {R"({"self": {"self": {}}})"}, {R"({"self": 1})"});
}

TEST(JsonSchemaGrammar, StringLengthPatternAndFormats) {
  Check(R"({"type": "string", "minLength": 2, "maxLength": 3})", {R"("ab")", R"("日本語")"},
        {R"("a")", R"("abcd")"});
  Check(R"({"type": "string", "pattern": "^[A-Z]{2}-\\d+$"})", {R"("AB-12")"},
        {R"("ab-12")", R"("AB-")"});
  Check(R"({"type": "string", "pattern": "a\"b"})", {R"("a\"b")"}, {});
  Check(R"({"type": "string", "format": "date"})", {R"("2024-02-28")", R"("1999-12-31")"},
        {R"("2024-02-30")", R"("2024-13-01")", R"("2024-04-31")"});
  Check(R"({"type": "string", "format": "time"})", {R"("23:59:59Z")", R"("08:00:00.5+02:00")"},
        {R"("24:00:00Z")", R"("08:00:00")"});
  Check(R"({"type": "string", "format": "date-time"})", {R"("2024-03-15T09:30:00Z")"},
        {R"("2024-03-15 09:30:00Z")"});
  Check(R"({"type": "string", "format": "uuid"})", {R"("0b6f2c1e-8d4a-4f3b-9c2e-7a5d1e0f4b3c")"},
        {R"("0b6f2c1e8d4a4f3b9c2e7a5d1e0f4b3c")"});
  Check(R"({"type": "string", "format": "email"})", {R"("ada.l+x@example.co.uk")"},
        {R"("ada@")", R"("@x.com")", R"("a b@x.com")"});
}

TEST(JsonSchemaGrammar, IntegerRangesAreExact) {
  const std::vector<std::pair<std::string, std::pair<int, int>>> cases = {
      {R"("minimum": 0, "maximum": 150)", {0, 150}},
      {R"("minimum": -37, "maximum": 1234)", {-37, 1234}},
      {R"("minimum": -120, "maximum": -5)", {-120, -5}},
      {R"("exclusiveMinimum": 9, "exclusiveMaximum": 100)", {10, 99}},
      {R"("minimum": 7, "maximum": 7)", {7, 7}},
  };
  for (const auto& [bounds, range] : cases) {
    absl::StatusOr<Grammar> g = JsonSchemaToGrammar(R"({"type": "integer", )" + bounds + "}");
    ASSERT_TRUE(g.ok()) << g.status();
    auto shared = std::make_shared<const Grammar>(*std::move(g));
    for (int v = -1300; v <= 1300; ++v) {
      GrammarMatcher m(shared);
      const bool accepted = m.AcceptString(std::to_string(v)) && m.IsAccepting();
      EXPECT_EQ(accepted, v >= range.first && v <= range.second) << bounds << " value " << v;
    }
  }
  Check(R"({"type": "integer", "minimum": 100})", {"100", "99999", "1000000000000000000"},
        {"99", "-1", "0"});
  Check(R"({"type": "integer", "maximum": -10})", {"-10", "-99999"}, {"-9", "0", "5"});
  Check(R"({"type": "integer", "minimum": 1.5, "maximum": 3.5})", {"2", "3"}, {"1", "4"});
}

TEST(JsonSchemaGrammar, UnsupportedKeywordsNameThemselves) {
  ExpectError(R"({"type": "string", "contentEncoding": "base64"})", "'contentEncoding'");
  ExpectError(R"({"type": "array", "uniqueItems": true})", "'uniqueItems'");
  ExpectError(R"({"type": "object", "patternProperties": {}})", "'patternProperties'");
  ExpectError(R"({"type": "object", "minProperties": 1})", "'minProperties'");
  ExpectError(R"({"type": "number", "minimum": 1})",
              "'minimum' is not supported for type 'number'");
  ExpectError(R"({"type": "integer", "multipleOf": 2})", "'multipleOf'");
  ExpectError(R"({"type": "string", "format": "hostname"})", "format 'hostname'");
  ExpectError(R"({"allOf": [{"type": "string"}, {"maxLength": 3}]})", "exactly one");
  ExpectError(R"({"not": {"type": "string"}})", "'not'");
  ExpectError(R"({"if": {}, "then": {}})", "'if'");
  ExpectError(R"({"$ref": "#/$defs/missing"})", "points to nothing");
  ExpectError(R"({"$ref": "http://example.com/schema"})", "only references into this schema");
  ExpectError(R"({"anyOf": [{"type": "string"}], "type": "string"})", "beside 'anyOf'");
  ExpectError(R"({"type": "strin"})", "unknown type 'strin'");
  ExpectError(R"({"type": "string", "pattern": "(a"})", "unclosed '('");
  ExpectError(R"({"type": "object", "required": ["x"]})", "'properties' lacks");
  ExpectError(R"({"type": "integer", "minimum": 5, "maximum": 4})", "no integer");
  ExpectError(R"({"enum": []})", "non-empty");
  ExpectError("false", "accepts nothing");
  ExpectError("{not json", "not valid JSON");
  ExpectError(R"({"type": "string", "maxLength": 100000})", "above 1000");
}

TEST(JsonSchemaGrammar, FreeJsonObject) {
  absl::StatusOr<Grammar> g = JsonObjectGrammar();
  ASSERT_TRUE(g.ok()) << g.status();
  auto shared = std::make_shared<const Grammar>(*std::move(g));
  for (const char* text : {"{}", R"({"a": [1, 2.5, "x", null, true, {"b": {}}]})"}) {
    GrammarMatcher m(shared);
    EXPECT_TRUE(m.AcceptString(text) && m.IsAccepting()) << text;
  }
  for (const char* text : {"[]", "1", R"({"a"})", R"({"a": 1,})"}) {
    GrammarMatcher m(shared);
    EXPECT_FALSE(m.AcceptString(text) && m.IsAccepting()) << text;
  }
}

}  // namespace
}  // namespace pagoda::structured
