#include "router/frontend/openai_protocol.h"

#include <limits>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "router/frontend/request_validation.h"

namespace pagoda {
namespace {

using nlohmann::json;

const Tokenizer& SyntheticTokenizer() {
  static const Tokenizer* tokenizer = [] {
    json vocab = json::object();
    for (int64_t id = 0; id < 64; ++id) vocab[absl::StrCat("t", id)] = id;
    const json root = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}}}};
    auto made = Tokenizer::FromJson(root.dump(), "", "synthetic");
    EXPECT_TRUE(made.ok()) << made.status();
    return made->release();
  }();
  return *tokenizer;
}

absl::Status CompletionError(const std::string& body) {
  absl::StatusOr<json> parsed = ParseJsonBody(body);
  if (!parsed.ok()) return parsed.status();
  return ParseCompletionRequest(*parsed).status();
}

absl::Status ChatError(const std::string& body) {
  absl::StatusOr<json> parsed = ParseJsonBody(body);
  if (!parsed.ok()) return parsed.status();
  return ParseChatCompletionRequest(*parsed).status();
}

TEST(OpenAIProtocol, ParsesEveryCompletionField) {
  const json body = {{"model", "m"},
                     {"prompt", "hello"},
                     {"max_tokens", 7},
                     {"temperature", 0.5},
                     {"top_p", 0.9},
                     {"top_k", 5},
                     {"min_p", 0.1},
                     {"n", 3},
                     {"stop", "x"},
                     {"seed", 42},
                     {"presence_penalty", 0.25},
                     {"frequency_penalty", 0.5},
                     {"repetition_penalty", 1.1},
                     {"logprobs", 2},
                     {"echo", true},
                     {"ignore_eos", true},
                     {"disable_speculative_decoding", true},
                     {"user", "u"},
                     {"stream", true},
                     {"stream_options", {{"include_usage", true}}}};
  absl::StatusOr<CompletionRequest> request = ParseCompletionRequest(body);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->model, "m");
  EXPECT_TRUE(request->echo);
  EXPECT_TRUE(request->stream);
  EXPECT_TRUE(request->include_usage);
  ASSERT_EQ(request->prompts.size(), 1u);
  const GenerationInput& input = request->prompts[0];
  EXPECT_EQ(input.text, "hello");
  EXPECT_EQ(input.model, "m");
  const SamplingParams& p = input.params;
  EXPECT_EQ(p.max_tokens, 7);
  EXPECT_FLOAT_EQ(p.temperature, 0.5f);
  EXPECT_FLOAT_EQ(p.top_p, 0.9f);
  EXPECT_EQ(p.top_k, 5);
  EXPECT_FLOAT_EQ(p.min_p, 0.1f);
  EXPECT_EQ(p.n, 3);
  EXPECT_THAT(p.stop, testing::ElementsAre("x"));
  EXPECT_EQ(p.seed, 42u);
  EXPECT_FLOAT_EQ(p.presence_penalty, 0.25f);
  EXPECT_FLOAT_EQ(p.frequency_penalty, 0.5f);
  EXPECT_FLOAT_EQ(p.repetition_penalty, 1.1f);
  EXPECT_EQ(p.logprobs, 2);
  EXPECT_TRUE(p.ignore_eos);
  EXPECT_TRUE(p.disable_speculative_decoding);
}

TEST(OpenAIProtocol, DefaultsMatchVllm) {
  absl::StatusOr<CompletionRequest> request = ParseCompletionRequest({{"prompt", "hi"}});
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->prompts[0].params.max_tokens, 16);
  EXPECT_EQ(request->prompts[0].params.logprobs, -1);
  EXPECT_FALSE(request->stream);
  EXPECT_FALSE(request->echo);
  EXPECT_FALSE(request->prompts[0].params.disable_speculative_decoding);
}

TEST(OpenAIProtocol, ParsesEveryPromptForm) {
  auto prompts = [](const json& prompt) {
    absl::StatusOr<CompletionRequest> request = ParseCompletionRequest({{"prompt", prompt}});
    EXPECT_TRUE(request.ok()) << request.status();
    return request.ok() ? request->prompts : std::vector<GenerationInput>{};
  };
  std::vector<GenerationInput> texts = prompts(json::array({"a", "b"}));
  ASSERT_EQ(texts.size(), 2u);
  EXPECT_EQ(texts[1].text, "b");
  std::vector<GenerationInput> ids = prompts(json::array({1, 2, 3}));
  ASSERT_EQ(ids.size(), 1u);
  EXPECT_FALSE(ids[0].text.has_value());
  EXPECT_THAT(ids[0].token_ids, testing::ElementsAre(1, 2, 3));
  std::vector<GenerationInput> lists =
      prompts(json::array({json::array({1}), json::array({4, 5})}));
  ASSERT_EQ(lists.size(), 2u);
  EXPECT_THAT(lists[1].token_ids, testing::ElementsAre(4, 5));
}

TEST(OpenAIProtocol, RejectsBadCompletionFieldsNamingThem) {
  const std::pair<std::string, std::string> cases[] = {
      {R"({"prompt": "a", "max_tokens": "ten"})", "max_tokens"},
      {R"({"prompt": "a", "stop": 5})", "stop"},
      {R"({"prompt": "a", "stop": ["x", 1]})", "stop"},
      {R"({"prompt": "a", "temperature": "hot"})", "temperature"},
      {R"({"prompt": "a", "n": 1.5})", "n"},
      {R"({"prompt": "a", "seed": "s"})", "seed"},
      {R"({"prompt": "a", "logprobs": true})", "logprobs"},
      {R"({"prompt": "a", "echo": 1})", "echo"},
      {R"({"prompt": "a", "stream": "yes"})", "stream"},
      {R"({"prompt": "a", "stream_options": {"include_usage": true}})", "stream_options"},
      {R"({"prompt": "a", "stream": true, "stream_options": 3})", "stream_options"},
      {R"({"prompt": "a", "model": 3})", "model"},
      {R"({"prompt": "a", "user": 3})", "user"},
      {R"({})", "prompt"},
      {R"({"prompt": 5})", "prompt"},
      {R"({"prompt": []})", "prompt"},
      {R"({"prompt": [[]]})", "prompt"},
      {R"({"prompt": [1, "a"]})", "prompt"},
      {R"({"prompt": [-1]})", "prompt"},
      {R"({"prompt": [99999999999]})", "prompt"},
      {R"({"prompt": [{"a": 1}]})", "prompt"},
  };
  for (const auto& [body, field] : cases) {
    const absl::Status status = CompletionError(body);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << body;
    EXPECT_EQ(InvalidField(status), field) << body << ": " << status;
  }
}

TEST(OpenAIProtocol, RejectsMalformedBodies) {
  for (const std::string body :
       {"", "{", "[1, 2]", "\"text\"", "{\"prompt\": \"\xff\xfe\"}", "{\"prompt\": \"\\ud800\"}"}) {
    const absl::Status status = CompletionError(body);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << body;
    EXPECT_EQ(InvalidField(status), "body") << body;
  }
}

TEST(OpenAIProtocol, ParsesChatFields) {
  const json body = {
      {"model", "m"},
      {"messages", json::array({{{"role", "system"}, {"content", "be brief"}},
                                {{"role", "user"},
                                 {"content", json::array({{{"type", "text"}, {"text", "a"}},
                                                          {{"type", "text"}, {"text", "b"}}})}}})},
      {"max_completion_tokens", 9},
      {"logprobs", true},
      {"top_logprobs", 3},
      {"stop", json::array({"x", "y"})},
      {"stream", true},
      {"stream_options", {{"include_usage", true}}}};
  absl::StatusOr<ChatCompletionRequest> request = ParseChatCompletionRequest(body);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->messages[1]["content"], "a\nb");
  EXPECT_EQ(request->messages[0]["role"], "system");
  EXPECT_EQ(request->params.max_tokens, 9);
  EXPECT_TRUE(request->max_tokens_given);
  EXPECT_EQ(request->params.logprobs, 3);
  EXPECT_THAT(request->params.stop, testing::ElementsAre("x", "y"));
  EXPECT_TRUE(request->include_usage);

  absl::StatusOr<ChatCompletionRequest> plain = ParseChatCompletionRequest(
      {{"messages", json::array({{{"role", "user"}, {"content", "hi"}}})}});
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_FALSE(plain->max_tokens_given);
  EXPECT_EQ(plain->params.logprobs, -1);
}

TEST(OpenAIProtocol, RejectsBadChatFieldsNamingThem) {
  const std::string hi = R"("messages": [{"role": "user", "content": "hi"}])";
  const std::pair<std::string, std::string> cases[] = {
      {R"({})", "messages"},
      {R"({"messages": []})", "messages"},
      {R"({"messages": "hi"})", "messages"},
      {R"({"messages": [{"content": "hi"}]})", "messages"},
      {R"({"messages": [{"role": "user", "content": 5}]})", "messages"},
      {R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})", "messages"},
      {"{" + hi + R"(, "logprobs": 1})", "logprobs"},
      {"{" + hi + R"(, "top_logprobs": 2})", "top_logprobs"},
      {"{" + hi + R"(, "logprobs": true, "top_logprobs": 21})", "top_logprobs"},
      {"{" + hi + R"(, "max_completion_tokens": "x"})", "max_completion_tokens"},
      {"{" + hi + R"(, "max_tokens": "ten"})", "max_tokens"},
  };
  for (const auto& [body, field] : cases) {
    const absl::Status status = ChatError(body);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << body;
    EXPECT_EQ(InvalidField(status), field) << body << ": " << status;
  }
}

TEST(OpenAIProtocol, ParsesEveryStructuredOutputForm) {
  using Kind = SamplingParams::ConstraintKind;
  const json schema = {{"type", "object"}, {"properties", {{"x", {{"type", "integer"}}}}}};
  const std::string hi = R"("messages": [{"role": "user", "content": "hi"}])";
  struct Case {
    std::string fields;  // after "prompt" (or the chat messages)
    Kind kind;
    std::string text;
    std::string param;
  };
  const Case cases[] = {
      {R"("response_format": {"type": "text"})", Kind::kNone, "", ""},
      {R"("response_format": {"type": "json_object"})", Kind::kJsonObject, "", "response_format"},
      {R"("response_format": {"type": "json_schema", "json_schema": {"name": "n", "strict": true,
          "schema": )" +
           schema.dump() + "}}",
       Kind::kJsonSchema, schema.dump(), "response_format"},
      {R"("guided_json": )" + schema.dump(), Kind::kJsonSchema, schema.dump(), "guided_json"},
      {R"("guided_json": ")" + absl::StrReplaceAll(schema.dump(), {{"\"", "\\\""}}) + "\"",
       Kind::kJsonSchema, schema.dump(), "guided_json"},
      {R"("guided_regex": "[0-9]+")", Kind::kRegex, "[0-9]+", "guided_regex"},
      {R"("guided_choice": ["a", "b"])", Kind::kChoice, R"(["a","b"])", "guided_choice"},
      {R"("guided_grammar": "root ::= \"x\"")", Kind::kGrammar, "root ::= \"x\"", "guided_grammar"},
      {R"("structured_outputs": {"json": )" + schema.dump() + "}", Kind::kJsonSchema, schema.dump(),
       "structured_outputs"},
      {R"("structured_outputs": {"regex": "a|b"})", Kind::kRegex, "a|b", "structured_outputs"},
      {R"("structured_outputs": {"choice": ["x"]})", Kind::kChoice, R"(["x"])",
       "structured_outputs"},
      {R"("structured_outputs": {"grammar": "root ::= \"y\""})", Kind::kGrammar, "root ::= \"y\"",
       "structured_outputs"},
      {R"("structured_outputs": {"json_object": true})", Kind::kJsonObject, "",
       "structured_outputs"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<json> body = ParseJsonBody(R"({"prompt": "a", )" + c.fields + "}");
    ASSERT_TRUE(body.ok()) << c.fields << ": " << body.status();
    absl::StatusOr<CompletionRequest> completion = ParseCompletionRequest(*body);
    ASSERT_TRUE(completion.ok()) << c.fields << ": " << completion.status();
    const GenerationInput& input = completion->prompts[0];
    EXPECT_EQ(input.params.constraint_kind, c.kind) << c.fields;
    EXPECT_EQ(input.params.constraint, c.text) << c.fields;
    EXPECT_EQ(input.constraint_param, c.param) << c.fields;
    EXPECT_TRUE(input.params.Validate().ok()) << c.fields;

    absl::StatusOr<json> chat_body = ParseJsonBody("{" + hi + ", " + c.fields + "}");
    ASSERT_TRUE(chat_body.ok());
    absl::StatusOr<ChatCompletionRequest> chat = ParseChatCompletionRequest(*chat_body);
    ASSERT_TRUE(chat.ok()) << c.fields << ": " << chat.status();
    EXPECT_EQ(chat->params.constraint_kind, c.kind) << c.fields;
    EXPECT_EQ(chat->params.constraint, c.text) << c.fields;
    EXPECT_EQ(chat->constraint_param, c.param) << c.fields;
  }
}

TEST(OpenAIProtocol, SchemasKeepTheirKeyOrder) {
  // The output writes properties in the schema's order, so the body's order must survive.
  const std::string schema =
      R"({"type":"object","properties":{"reasoning":{"type":"string"},"answer":{"type":"integer"},)"
      R"("confidence":{"type":"number"}},"required":["reasoning","answer"]})";
  for (const std::string& fields :
       {R"("guided_json": )" + schema,
        R"("response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": )" +
            schema + "}}",
        R"("structured_outputs": {"json": )" + schema + "}"}) {
    absl::StatusOr<json> body = ParseJsonBody(R"({"prompt": "a", )" + fields + "}");
    ASSERT_TRUE(body.ok()) << body.status();
    absl::StatusOr<CompletionRequest> completion = ParseCompletionRequest(*body);
    ASSERT_TRUE(completion.ok()) << completion.status();
    EXPECT_EQ(completion->prompts[0].params.constraint, schema) << fields;
  }
}

TEST(OpenAIProtocol, RejectsBadStructuredOutputFieldsNamingThem) {
  const std::pair<std::string, std::string> cases[] = {
      {R"({"prompt": "a", "response_format": "json"})", "response_format"},
      {R"({"prompt": "a", "response_format": {"type": "xml"}})", "response_format"},
      {R"({"prompt": "a", "response_format": {"type": "json_schema"}})", "response_format"},
      {R"({"prompt": "a", "response_format": {"type": "json_schema", "json_schema": {}}})",
       "response_format"},
      {R"({"prompt": "a", "response_format": {"type": "json_schema",
           "json_schema": {"schema": {}, "strict": "yes"}}})",
       "response_format"},
      {R"({"prompt": "a", "response_format": {"type": "json_schema",
           "json_schema": {"schema": 5}}})",
       "response_format"},
      {R"({"prompt": "a", "guided_json": 5})", "guided_json"},
      {R"({"prompt": "a", "guided_regex": ["a"]})", "guided_regex"},
      {R"({"prompt": "a", "guided_choice": []})", "guided_choice"},
      {R"({"prompt": "a", "guided_choice": ["a", 1]})", "guided_choice"},
      {R"({"prompt": "a", "guided_grammar": 1})", "guided_grammar"},
      {R"({"prompt": "a", "structured_outputs": []})", "structured_outputs"},
      {R"({"prompt": "a", "structured_outputs": {"xml": "x"}})", "structured_outputs"},
      {R"({"prompt": "a", "structured_outputs": {"json_object": 1}})", "structured_outputs"},
      {R"({"prompt": "a", "structured_outputs": {"regex": "a", "choice": ["b"]}})",
       "structured_outputs"},
      // One constraint at most: the second field is named.
      {R"({"prompt": "a", "response_format": {"type": "json_object"}, "guided_regex": "a"})",
       "guided_regex"},
      {R"({"prompt": "a", "guided_json": {}, "guided_choice": ["a"]})", "guided_choice"},
  };
  for (const auto& [body, field] : cases) {
    const absl::Status status = CompletionError(body);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << body;
    EXPECT_EQ(InvalidField(status), field) << body << ": " << status;
  }
}

CompletionOutput SampleOutput() {
  CompletionOutput out;
  out.index = 1;
  out.text = "t5t6";
  out.token_ids = {5, 6};
  out.logprobs = {-0.5f, -std::numeric_limits<float>::infinity()};
  out.top_logprobs = {{{5, -0.5f}, {7, -1.5f}}, {{6, -2.0f}, {8, -3.0f}}};
  out.finish_reason = FinishReason::kStop;
  out.stop_reason = std::string("zz");
  return out;
}

TEST(OpenAIProtocol, CompletionChoiceHasOpenAIShape) {
  const json choice = CompletionChoiceJson(3, SampleOutput(), "ab", true, SyntheticTokenizer(), 0);
  EXPECT_EQ(choice["index"], 3);
  EXPECT_EQ(choice["text"], "abt5t6");
  EXPECT_EQ(choice["finish_reason"], "stop");
  EXPECT_EQ(choice["stop_reason"], "zz");
  const json& logprobs = choice["logprobs"];
  EXPECT_EQ(logprobs["tokens"], json::array({"t5", "t6"}));
  EXPECT_EQ(logprobs["token_logprobs"], json::array({-0.5, -9999.0}));
  EXPECT_EQ(logprobs["text_offset"], json::array({2, 4}));
  EXPECT_EQ(logprobs["top_logprobs"][0], json({{"t5", -0.5}, {"t7", -1.5}}));
  EXPECT_TRUE(
      CompletionChoiceJson(0, SampleOutput(), "", false, SyntheticTokenizer(), 0)["logprobs"]
          .is_null());
  CompletionOutput running = SampleOutput();
  running.finish_reason.reset();
  running.stop_reason = std::monostate();
  const json partial = CompletionChoiceJson(0, running, "", false, SyntheticTokenizer(), 0);
  EXPECT_TRUE(partial["finish_reason"].is_null());
  EXPECT_TRUE(partial["stop_reason"].is_null());
  running.stop_reason = int32_t{2};
  EXPECT_EQ(StopReasonJson(running), 2);
}

TEST(OpenAIProtocol, ChatLogprobsHaveChatShape) {
  const json choice = ChatChoiceJson(0, SampleOutput(), 1, true, SyntheticTokenizer());
  EXPECT_EQ(choice["message"], json({{"role", "assistant"}, {"content", "t5t6"}}));
  const json& first = choice["logprobs"]["content"][0];
  EXPECT_EQ(first["token"], "t5");
  EXPECT_EQ(first["logprob"], -0.5);
  EXPECT_EQ(first["bytes"], json::array({'t', '5'}));
  ASSERT_EQ(first["top_logprobs"].size(), 1u);
  EXPECT_EQ(first["top_logprobs"][0]["token"], "t5");
  const json chunk = ChatChunkChoiceJson(0, SampleOutput(), 0, false, SyntheticTokenizer());
  EXPECT_EQ(chunk["delta"]["content"], "t5t6");
  EXPECT_TRUE(chunk["logprobs"].is_null());
}

TEST(OpenAIProtocol, ErrorsAndUsageHaveOpenAIShape) {
  const json error = ErrorJson(400, "max_tokens: bad", "max_tokens");
  EXPECT_EQ(error["error"]["message"], "max_tokens: bad");
  EXPECT_EQ(error["error"]["type"], "invalid_request_error");
  EXPECT_EQ(error["error"]["param"], "max_tokens");
  EXPECT_EQ(error["error"]["code"], 400);
  EXPECT_TRUE(ErrorJson(503, "down", "")["error"]["param"].is_null());
  EXPECT_EQ(UsageJson({.prompt_tokens = 3, .completion_tokens = 4}),
            json({{"prompt_tokens", 3}, {"completion_tokens", 4}, {"total_tokens", 7}}));
  const json envelope = EnvelopeJson("cmpl-1", "text_completion", 5, "m");
  EXPECT_EQ(envelope["choices"], json::array());
  EXPECT_EQ(envelope["object"], "text_completion");
  // Bytes that are not UTF-8 (a token splitting a character) never make dumping throw.
  EXPECT_EQ(DumpJson(json("a\xff")), "\"a\xEF\xBF\xBD\"");
}

TEST(OpenAIProtocol, ReadsBadWordsOnBothEndpointsAndNamesThemInErrors) {
  absl::StatusOr<CompletionRequest> completion =
      ParseCompletionRequest({{"prompt", "a"}, {"bad_words", {"hot dog", "cat"}}});
  ASSERT_TRUE(completion.ok()) << completion.status();
  EXPECT_THAT(completion->prompts[0].params.bad_words, testing::ElementsAre("hot dog", "cat"));
  absl::StatusOr<ChatCompletionRequest> chat = ParseChatCompletionRequest(
      {{"messages", {{{"role", "user"}, {"content", "a"}}}}, {"bad_words", {"cat"}}});
  ASSERT_TRUE(chat.ok()) << chat.status();
  EXPECT_THAT(chat->params.bad_words, testing::ElementsAre("cat"));
  for (const char* bad : {R"("cat")", R"([1])", R"([""])", R"(["cat", null])", R"({"cat": 1})"}) {
    EXPECT_EQ(
        InvalidField(CompletionError(absl::StrCat(R"({"prompt": "a", "bad_words": )", bad, "}"))),
        "bad_words")
        << bad;
    EXPECT_EQ(InvalidField(ChatError(absl::StrCat(
                  R"({"messages": [{"role": "user", "content": "a"}], "bad_words": )", bad, "}"))),
              "bad_words")
        << bad;
  }
  // The token ids are the router's to fill: not a field of the HTTP API.
  EXPECT_EQ(InvalidField(CompletionError(R"({"prompt": "a", "bad_words_token_ids": [[1]]})")),
            "bad_words_token_ids");
}

TEST(OpenAIProtocol, RefusesUnknownFieldsNamingThem) {
  EXPECT_EQ(InvalidField(CompletionError(R"({"prompt": "a", "suffix": "b"})")), "suffix");
  // Known fields with bad values name themselves too.
  EXPECT_EQ(InvalidField(CompletionError(R"({"prompt": "a", "logit_bias": {"x": 1}})")),
            "logit_bias");
  EXPECT_EQ(InvalidField(CompletionError(R"({"prompt": "a", "allowed_token_ids": []})")),
            "allowed_token_ids");
  EXPECT_EQ(InvalidField(CompletionError(R"({"prompt": "a", "tools": []})")), "tools");
  EXPECT_EQ(InvalidField(ChatError(R"({"messages": [{"role": "user", "content": "a"}],
                                        "prompt": "a"})")),
            "prompt");
  EXPECT_EQ(InvalidField(ChatError(R"({"messages": [{"role": "user", "content": "a"}],
                                        "frobnicate": 1})")),
            "frobnicate");
  // vLLM's extensions the server reads are known.
  EXPECT_TRUE(CompletionError(R"({"prompt": "a", "top_k": 3, "min_tokens": 1,
                                  "skip_special_tokens": true, "stop_token_ids": [1]})")
                  .ok());
}

TEST(OpenAIProtocol, BestOfSamplesCandidatesWithLogprobsToRankThem) {
  absl::StatusOr<CompletionRequest> request =
      ParseCompletionRequest({{"prompt", "a"}, {"n", 2}, {"best_of", 5}});
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->prompts[0].params.n, 5);
  EXPECT_EQ(request->prompts[0].params.logprobs, 0);
  EXPECT_EQ(request->best_of.n, 2);
  EXPECT_EQ(request->best_of.candidates, 5);
  EXPECT_TRUE(request->best_of.internal_logprobs);
  EXPECT_TRUE(request->best_of.ranks());
  // Logprobs the client asked for stay (and are returned).
  request = ParseCompletionRequest({{"prompt", "a"}, {"best_of", 3}, {"logprobs", 2}});
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->prompts[0].params.n, 3);
  EXPECT_EQ(request->prompts[0].params.logprobs, 2);
  EXPECT_FALSE(request->best_of.internal_logprobs);
  // best_of == n (and absent, or null) is plain n sampling, streaming allowed.
  for (const json& body :
       {json{{"prompt", "a"}, {"n", 2}, {"best_of", 2}, {"stream", true}},
        json{{"prompt", "a"}, {"n", 2}}, json{{"prompt", "a"}, {"n", 2}, {"best_of", nullptr}}}) {
    request = ParseCompletionRequest(body);
    ASSERT_TRUE(request.ok()) << request.status();
    EXPECT_EQ(request->prompts[0].params.n, 2);
    EXPECT_EQ(request->prompts[0].params.logprobs, -1);
    EXPECT_FALSE(request->best_of.ranks());
  }
  // With use_beam_search, best_of is the beam width (vLLM V0), not candidates.
  request = ParseCompletionRequest(
      {{"prompt", "a"}, {"n", 2}, {"best_of", 4}, {"use_beam_search", true}});
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->prompts[0].params.beam_width, 4);
  EXPECT_EQ(request->prompts[0].params.n, 2);
  EXPECT_FALSE(request->best_of.ranks());
  // Chat reads it the same way; its logprobs are top_logprobs or -1.
  absl::StatusOr<ChatCompletionRequest> chat = ParseChatCompletionRequest(
      {{"messages", {{{"role", "user"}, {"content", "a"}}}}, {"best_of", 3}});
  ASSERT_TRUE(chat.ok()) << chat.status();
  EXPECT_EQ(chat->params.n, 3);
  EXPECT_EQ(chat->params.logprobs, 0);
  EXPECT_TRUE(chat->best_of.internal_logprobs);
  EXPECT_EQ(chat->best_of.n, 1);
  chat = ParseChatCompletionRequest({{"messages", {{{"role", "user"}, {"content", "a"}}}},
                                     {"best_of", 3},
                                     {"logprobs", true},
                                     {"top_logprobs", 2}});
  ASSERT_TRUE(chat.ok()) << chat.status();
  EXPECT_EQ(chat->params.logprobs, 2);
  EXPECT_FALSE(chat->best_of.internal_logprobs);
}

TEST(OpenAIProtocol, RejectsBadBestOfNamingIt) {
  for (const std::string body : {
           R"({"prompt": "a", "best_of": "3"})",
           R"({"prompt": "a", "best_of": 1.5})",
           R"({"prompt": "a", "best_of": true})",
           R"({"prompt": "a", "best_of": 0})",
           R"({"prompt": "a", "best_of": -2})",
           R"({"prompt": "a", "best_of": 65})",
           R"({"prompt": "a", "best_of": 18446744073709551615})",
           R"({"prompt": "a", "n": 3, "best_of": 2})",
           R"({"prompt": "a", "best_of": 2, "stream": true})",
           R"({"prompt": "a", "beam_width": 4, "best_of": 3})",
       }) {
    const absl::Status status = CompletionError(body);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << body;
    EXPECT_EQ(InvalidField(status), "best_of") << body << ": " << status;
  }
  for (const std::string body : {
           R"({"messages": [{"role": "user", "content": "a"}], "best_of": 2, "stream": true})",
           R"({"messages": [{"role": "user", "content": "a"}], "n": 2, "best_of": 1})",
           R"({"messages": [{"role": "user", "content": "a"}], "best_of": "2"})",
       }) {
    const absl::Status status = ChatError(body);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << body;
    EXPECT_EQ(InvalidField(status), "best_of") << body << ": " << status;
  }
}

TEST(OpenAIProtocol, RankBestOfKeepsTheHighestCumulativeLogprobsInOrder) {
  std::vector<CompletionOutput> outputs(5);
  const double sums[] = {-3.0, -1.0, -5.0, -2.0};
  for (int32_t i = 0; i < 5; ++i) {
    outputs[i].index = i;
    outputs[i].text = std::string(1, static_cast<char>('a' + i));
    if (i < 4) outputs[i].cumulative_logprob = sums[i];  // "e" has none: last
  }
  std::vector<CompletionOutput> best = RankBestOf(outputs, 2);
  ASSERT_EQ(best.size(), 2u);
  EXPECT_EQ(best[0].text, "b");
  EXPECT_EQ(best[0].index, 0);
  EXPECT_EQ(best[1].text, "d");
  EXPECT_EQ(best[1].index, 1);
  best = RankBestOf(outputs, 5);
  ASSERT_EQ(best.size(), 5u);
  EXPECT_EQ(best[2].text, "a");
  EXPECT_EQ(best[3].text, "c");
  EXPECT_EQ(best[4].text, "e");
  // Ties keep the lower index first.
  outputs[3].cumulative_logprob = -1.0;
  best = RankBestOf(outputs, 2);
  EXPECT_EQ(best[0].text, "b");
  EXPECT_EQ(best[1].text, "d");
  // A NaN sum ranks with the missing ones, last, by index.
  outputs[0].cumulative_logprob = std::numeric_limits<double>::quiet_NaN();
  best = RankBestOf(outputs, 5);
  ASSERT_EQ(best.size(), 5u);
  EXPECT_EQ(best[0].text, "b");
  EXPECT_EQ(best[2].text, "c");
  EXPECT_EQ(best[3].text, "a");
  EXPECT_EQ(best[4].text, "e");
}

TEST(OpenAIProtocol, ParsesToolsToolChoiceAndToolMessages) {
  const json body = json::parse(R"({
    "messages": [
      {"role": "user", "content": "weather?"},
      {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
        "function": {"name": "w", "arguments": "{\"city\": \"Oslo\"}"}}]},
      {"role": "tool", "tool_call_id": "call_1", "content": "4C"}],
    "tools": [{"type": "function", "function": {"name": "w", "parameters": {"type": "object",
      "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
              {"type": "function", "function": {"name": "now"}}],
    "tool_choice": {"type": "function", "function": {"name": "w"}},
    "parallel_tool_calls": false})");
  absl::StatusOr<ChatCompletionRequest> request = ParseChatCompletionRequest(body);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->tools.functions.size(), 2u);
  EXPECT_EQ(request->tools.choice, ToolChoice::kFunction);
  EXPECT_EQ(request->tools.function_name, "w");
  EXPECT_FALSE(request->tools.parallel_tool_calls);
  EXPECT_TRUE(request->tools.Enforced());
  EXPECT_EQ(request->messages[1]["tool_calls"][0]["function"]["arguments"]["city"], "Oslo");
  EXPECT_EQ(request->messages[1]["content"], "");
  absl::StatusOr<std::string> grammar = request->tools.Grammar(ToolCallFormat::kHermes);
  ASSERT_TRUE(grammar.ok()) << grammar.status();
  EXPECT_TRUE(absl::StrContains(*grammar, "\\\"w\\\"")) << *grammar;
  EXPECT_FALSE(absl::StrContains(*grammar, "now")) << *grammar;

  absl::StatusOr<ChatCompletionRequest> plain = ParseChatCompletionRequest(
      json::parse(R"({"messages": [{"role": "user", "content": "a"}]})"));
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->tools.choice, ToolChoice::kNone);
  EXPECT_FALSE(plain->tools.Parsed());
}

TEST(OpenAIProtocol, BadToolsAreInvalidNamingTheField) {
  const std::string messages = R"("messages": [{"role": "user", "content": "a"}])";
  const std::pair<std::string, std::string> cases[] = {
      {R"("tools": {"type": "function"})", "tools"},
      {R"("tools": [{"type": "code"}])", "tools"},
      {R"("tools": [{"type": "function", "function": {"name": "a b"}}])", "tools"},
      {R"("tools": [{"type": "function", "function": {"name": "f", "parameters": []}}])", "tools"},
      {R"("tools": [{"type": "function", "function": {"name": "f"}},
                   {"type": "function", "function": {"name": "f"}}])",
       "tools"},
      {R"("tools": [{"type": "function", "function": {"name": "f",
           "parameters": {"type": "object", "patternProperties": {}}}}])",
       "tools"},
      {R"("tool_choice": "required")", "tool_choice"},
      {R"("tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "maybe")",
       "tool_choice"},
      {R"("tools": [{"type": "function", "function": {"name": "f"}}],
          "tool_choice": {"type": "function", "function": {"name": "g"}})",
       "tool_choice"},
      {R"("parallel_tool_calls": 1)", "parallel_tool_calls"},
  };
  for (const auto& [fields, field] : cases) {
    const absl::Status status = ChatError(absl::StrCat("{", messages, ", ", fields, "}"));
    EXPECT_EQ(InvalidField(status), field) << fields << " -> " << status;
  }
  const absl::Status schema =
      ChatError(absl::StrCat("{", messages,
                             R"(, "tools": [{"type": "function", "function": {"name": "geo",
           "parameters": {"type": "object", "patternProperties": {}}}}]})"));
  EXPECT_TRUE(absl::StrContains(schema.message(), "'geo'")) << schema;
  EXPECT_TRUE(absl::StrContains(schema.message(), "patternProperties")) << schema;
}

}  // namespace
}  // namespace pagoda
