// OpenAI protocol: the JSON of the router's OpenAI-compatible HTTP API (router/http_server.h),
// with vLLM's field names, defaults and shapes. Parses request bodies into what the Frontend
// takes (errors are InvalidArgument starting with the offending field, so InvalidField() names
// it), and builds response, chunk and error objects from the engine's RequestOutput.
//
//   ASSIGN_OR_RETURN(CompletionRequest request, ParseCompletionRequest(body));
//   for (GenerationInput& input : request.prompts) sessions.push_back(frontend.Submit(input));
//   nlohmann::json choice = CompletionChoiceJson(index, total.outputs[0], options, tokenizer);
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/tokenizer/tokenizer.h"
#include "engine/output_processor.h"
#include "nlohmann/json.hpp"
#include "router/frontend/chat_tools.h"
#include "router/frontend/frontend.h"

namespace pagoda {

/// Structured output: `response_format` ({type: text | json_object | json_schema with
/// json_schema.schema and strict}), vLLM's `guided_json` / `guided_regex` / `guided_choice` /
/// `guided_grammar` and `structured_outputs` ({json | regex | choice | grammar | json_object})
/// set SamplingParams' constraint (one of them at most); the request's constraint_param names
/// the field, and the Frontend compiles the constraint before admitting the request.

/// OpenAI's / vLLM V0's `best_of` (not with beam search: use_beam_search + best_of is the beam
/// width): the engine samples `candidates` completions per prompt (params.n) and the `n` with
/// the highest cumulative logprob are returned, best first, indexes 0..n-1; candidates == n is
/// plain `n` sampling. Ranking needs each token's logprob, so a request without logprobs has
/// them turned on (logprobs 0) and `internal_logprobs` says they are not returned.
struct BestOf {
  int32_t n = 1;
  int32_t candidates = 1;
  bool internal_logprobs = false;

  bool ranks() const { return candidates > n; }
};

/// A parsed POST /v1/completions body.
struct CompletionRequest {
  std::string model;
  /// One input per prompt (same params), in order; choices of prompt i have indexes i * n + j.
  std::vector<GenerationInput> prompts;
  bool echo = false;
  bool stream = false;
  bool include_usage = false;       // stream_options.include_usage
  std::optional<double> timeout_s;  // Pagoda's `timeout`: seconds from admission
  BestOf best_of;                   // prompts' params.n is best_of.candidates
};

/// A parsed POST /v1/chat/completions body.
struct ChatCompletionRequest {
  std::string model;
  /// Array of {role, content: string, ...}: text parts joined; an assistant message's
  /// tool_calls[].function.arguments given as JSON text become JSON (what templates expect).
  nlohmann::json messages;
  SamplingParams params;            // logprobs: top_logprobs when "logprobs" is true, else -1
  std::string constraint_param;     // the field params' constraint came from, or ""
  bool max_tokens_given = false;    // false: the server gives the rest of the context
  bool add_special_tokens = false;  // vLLM's extension: BOS before the rendered template too
  bool stream = false;
  bool include_usage = false;
  std::optional<double> timeout_s;
  BestOf best_of;   // params.n is best_of.candidates
  ChatTools tools;  // tools, tool_choice, parallel_tool_calls (router/frontend/chat_tools.h)
  /// vLLM's chat_template_kwargs: variables for the chat template (e.g. Qwen3's
  /// {"enable_thinking": false}); never messages, add_generation_prompt, tools or the BOS/EOS text.
  nlohmann::json chat_template_kwargs = nlohmann::json::object();
};

/// A parsed POST /tokenize body (vLLM's): a text prompt, or chat messages rendered by the
/// model's chat template first.
struct TokenizeRequest {
  std::string model;
  std::optional<std::string> prompt;  // the completion form, or
  nlohmann::json messages;            // the chat form (null with a prompt)
  /// BOS and the like: default true for a prompt, false for messages (the template writes them).
  bool add_special_tokens = true;
  bool add_generation_prompt = true;  // chat form: end with the assistant turn's opening
  nlohmann::json tools;               // chat form: offered to the template, or null
  bool return_token_strs = false;     // also each token's text
  nlohmann::json chat_template_kwargs = nlohmann::json::object();  // chat form, as chat's
};

/// A parsed POST /detokenize body: ids in [0, 2^31); the vocabulary bound is the server's check.
struct DetokenizeRequest {
  std::string model;
  std::vector<int32_t> tokens;
};

/// Unknown top-level fields are refused (InvalidArgument naming the field) on both endpoints,
/// except these vLLM extensions the server reads (see docs/api.md); OpenAI's own fields the
/// server does not support (suffix, functions, ...) are refused the same way.
bool IsKnownCompletionField(const std::string& field);
bool IsKnownChatCompletionField(const std::string& field);

/// Parses a JSON body: malformed JSON or invalid UTF-8 is InvalidArgument, as is a non-object.
absl::StatusOr<nlohmann::json> ParseJsonBody(std::string_view body);

absl::StatusOr<CompletionRequest> ParseCompletionRequest(const nlohmann::json& body);
absl::StatusOr<ChatCompletionRequest> ParseChatCompletionRequest(const nlohmann::json& body);

/// Exactly one of prompt and messages; unknown fields, wrong types, chat-only fields with a
/// prompt: InvalidArgument naming the field.
absl::StatusOr<TokenizeRequest> ParseTokenizeRequest(const nlohmann::json& body);
/// `tokens` required, an array of non-negative integers; unknown fields refused.
absl::StatusOr<DetokenizeRequest> ParseDetokenizeRequest(const nlohmann::json& body);

/// best_of: the `n` outputs with the highest cumulative_logprob (absent counts as -inf; ties
/// keep the lower index first), best first, re-indexed 0..n-1.
std::vector<CompletionOutput> RankBestOf(std::vector<CompletionOutput> outputs, int32_t n);

/// {"error": {"message", "type", "param", "code"}}; `param` null when empty.
nlohmann::json ErrorJson(int http_status, const std::string& message, const std::string& param);

/// "stop", "length", "abort" or null.
nlohmann::json FinishReasonJson(const CompletionOutput& out);
/// The stop string, the stop token id or null.
nlohmann::json StopReasonJson(const CompletionOutput& out);
nlohmann::json UsageJson(const Usage& usage);

/// The completions "logprobs" object ({tokens, token_logprobs, top_logprobs, text_offset}) of
/// `out`'s tokens, the first at `text_offset` in the choice's text; null without logprobs.
nlohmann::json CompletionLogprobsJson(const CompletionOutput& out, const Tokenizer& tokenizer,
                                      int64_t text_offset);
/// The chat "logprobs" object ({content: [{token, logprob, bytes, top_logprobs}]}).
nlohmann::json ChatLogprobsJson(const CompletionOutput& out, const Tokenizer& tokenizer,
                                int32_t top_logprobs);

/// One completions choice (also a streamed chunk's choice): `prefix` goes before the text (echo).
nlohmann::json CompletionChoiceJson(int32_t index, const CompletionOutput& out,
                                    const std::string& prefix, bool logprobs,
                                    const Tokenizer& tokenizer, int64_t text_offset);

/// A chat.completion choice ({index, message, logprobs, finish_reason, stop_reason}).
nlohmann::json ChatChoiceJson(int32_t index, const CompletionOutput& out, int32_t top_logprobs,
                              bool logprobs, const Tokenizer& tokenizer);
/// A chat.completion.chunk choice ({index, delta, logprobs, finish_reason, stop_reason}).
nlohmann::json ChatChunkChoiceJson(int32_t index, const CompletionOutput& out, int32_t top_logprobs,
                                   bool logprobs, const Tokenizer& tokenizer);

/// A response or chunk envelope: {id, object, created, model, choices: []}.
nlohmann::json EnvelopeJson(const std::string& id, const std::string& object, int64_t created,
                            const std::string& model);

/// Serializes for the wire: never throws (bytes of invalid UTF-8 become U+FFFD).
std::string DumpJson(const nlohmann::json& json);

}  // namespace pagoda
