#include "router/frontend/openai_protocol.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <limits>
#include <string_view>
#include <utility>
#include <variant>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/json_util.h"
#include "common/status_macros.h"
#include "engine/finish_reason.h"

namespace pagoda {
namespace {

using nlohmann::json;

absl::Status WrongType(const std::string& field, const std::string& expected, const json& got) {
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": must be ", expected, ", got JSON ", got.type_name()));
}

// Reads an optional field; absent or null leaves `out` as it is.
absl::Status ReadBool(const json& body, const std::string& field, bool& out) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_boolean()) return WrongType(field, "a boolean", *it);
  out = it->get<bool>();
  return absl::OkStatus();
}

absl::Status ReadString(const json& body, const std::string& field, std::string& out) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_string()) return WrongType(field, "a string", *it);
  out = it->get<std::string>();
  return absl::OkStatus();
}

// A JSON array of token ids, each in int32 range (the vocabulary check is the Frontend's).
absl::StatusOr<std::vector<int32_t>> TokenIds(const json& ids) {
  std::vector<int32_t> out;
  out.reserve(ids.size());
  for (const json& id : ids) {
    if (!id.is_number_integer()) {
      return WrongType("prompt", "a string, an array of strings or of token ids", id);
    }
    const bool in_range =
        id.is_number_unsigned()
            ? id.get<uint64_t>() <= std::numeric_limits<int32_t>::max()
            : id.get<int64_t>() >= 0 && id.get<int64_t>() <= std::numeric_limits<int32_t>::max();
    if (!in_range) {
      return absl::InvalidArgumentError(
          absl::StrCat("prompt: token id ", id.dump(), " is outside the vocabulary"));
    }
    out.push_back(static_cast<int32_t>(id.get<int64_t>()));
  }
  return out;
}

// OpenAI's prompt: a string, an array of strings, an array of token ids, or an array of those.
absl::StatusOr<std::vector<GenerationInput>> ParsePrompts(const json& body) {
  auto it = body.find("prompt");
  if (it == body.end() || it->is_null()) {
    return absl::InvalidArgumentError("prompt: is required");
  }
  const json& prompt = *it;
  std::vector<GenerationInput> inputs;
  if (prompt.is_string()) {
    inputs.push_back({.text = prompt.get<std::string>()});
    return inputs;
  }
  if (!prompt.is_array()) {
    return WrongType("prompt", "a string, an array of strings or of token ids", prompt);
  }
  if (prompt.empty()) return absl::InvalidArgumentError("prompt: must not be empty");
  if (prompt[0].is_number_integer()) {
    ASSIGN_OR_RETURN(std::vector<int32_t> ids, TokenIds(prompt));
    inputs.push_back({.token_ids = std::move(ids)});
    return inputs;
  }
  for (const json& item : prompt) {
    if (item.is_string()) {
      inputs.push_back({.text = item.get<std::string>()});
    } else if (item.is_array()) {
      if (item.empty()) return absl::InvalidArgumentError("prompt: must not be empty");
      ASSIGN_OR_RETURN(std::vector<int32_t> ids, TokenIds(item));
      inputs.push_back({.token_ids = std::move(ids)});
    } else {
      return WrongType("prompt", "a string, an array of strings or of token ids", item);
    }
  }
  return inputs;
}

// stream and stream_options.include_usage.
absl::Status ReadStream(const json& body, bool& stream, bool& include_usage) {
  RETURN_IF_ERROR(ReadBool(body, "stream", stream));
  auto it = body.find("stream_options");
  if (it == body.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_object()) return WrongType("stream_options", "an object", *it);
  if (!stream) {
    return absl::InvalidArgumentError("stream_options: only allowed when stream is true");
  }
  if (auto usage = it->find("include_usage"); usage != it->end() && !usage->is_null()) {
    if (!usage->is_boolean())
      return WrongType("stream_options", "{\"include_usage\": bool}", *usage);
    include_usage = usage->get<bool>();
  }
  return absl::OkStatus();
}

// A message's content as text: a string, or the text parts of an array joined by newlines.
absl::StatusOr<std::string> MessageText(const json& content) {
  if (content.is_null()) return std::string();
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) return WrongType("messages", "content as a string or parts", content);
  std::string text;
  bool first = true;
  for (const json& part : content) {
    if (!part.is_object() || part.value("type", json()) != "text" || !part.contains("text") ||
        !part["text"].is_string()) {
      return absl::InvalidArgumentError(
          "messages: content parts must be {\"type\": \"text\", \"text\": string}");
    }
    if (!first) text += "\n";
    text += part["text"].get<std::string>();
    first = false;
  }
  return text;
}

// An assistant message's tool_calls as the chat templates read them: OpenAI sends each
// function.arguments as JSON text; templates apply `tojson` to it or iterate it, so it becomes
// JSON (text that is not JSON stays text).
absl::StatusOr<json> TemplateToolCalls(const json& calls) {
  if (!calls.is_array()) return WrongType("messages", "tool_calls as an array", calls);
  json out = calls;
  for (json& call : out) {
    if (!call.is_object() || !call.contains("function") || !call["function"].is_object() ||
        !call["function"].value("name", json()).is_string()) {
      return absl::InvalidArgumentError(
          "messages: each tool_calls entry needs {\"function\": {\"name\", \"arguments\"}}");
    }
    json& function = call["function"];
    if (auto arguments = function.find("arguments");
        arguments != function.end() && arguments->is_string()) {
      json parsed = json::parse(arguments->get<std::string>(), nullptr, /*allow_exceptions=*/false);
      if (!parsed.is_discarded()) *arguments = std::move(parsed);
    }
  }
  return out;
}

absl::StatusOr<json> ParseMessages(const json& body) {
  auto it = body.find("messages");
  if (it == body.end() || it->is_null()) return absl::InvalidArgumentError("messages: is required");
  if (!it->is_array()) return WrongType("messages", "an array", *it);
  if (it->empty()) return absl::InvalidArgumentError("messages: must not be empty");
  json messages = json::array();
  for (const json& message : *it) {
    if (!message.is_object()) return WrongType("messages", "an array of objects", message);
    auto role = message.find("role");
    if (role == message.end() || !role->is_string()) {
      return absl::InvalidArgumentError("messages: every message needs a string role");
    }
    json out = message;
    ASSIGN_OR_RETURN(std::string text, MessageText(message.value("content", json())));
    out["content"] = std::move(text);
    if (auto calls = message.find("tool_calls"); calls != message.end() && !calls->is_null()) {
      ASSIGN_OR_RETURN(out["tool_calls"], TemplateToolCalls(*calls));
    }
    messages.push_back(std::move(out));
  }
  return messages;
}

// SamplingParams::FromJson says "sampling parameter <field> must be ..."; the API's errors start
// with the field, for InvalidField().
absl::StatusOr<SamplingParams> ReadSamplingParams(const json& body) {
  absl::StatusOr<SamplingParams> params = SamplingParams::FromJson(body);
  if (params.ok() || !absl::IsInvalidArgument(params.status())) return params;
  const std::string message(params.status().message());
  constexpr char kPrefix[] = "sampling parameter ";
  constexpr size_t kPrefixSize = sizeof(kPrefix) - 1;
  if (!absl::StartsWith(message, kPrefix)) return params;
  const size_t end = message.find(' ', kPrefixSize);
  if (end == std::string::npos) return params;
  return absl::InvalidArgumentError(
      absl::StrCat(message.substr(kPrefixSize, end - kPrefixSize), ": ", message.substr(end + 1)));
}

// Structured output: OpenAI's response_format, vLLM's guided_* fields and structured_outputs.
// At most one may be given; `param` is the field it came from, for errors (the Frontend's
// compile errors name it too).
absl::Status ReadConstraint(const json& body, SamplingParams& params, std::string& param) {
  using Kind = SamplingParams::ConstraintKind;
  auto set = [&](const std::string& field, Kind kind, std::string text) -> absl::Status {
    if (!param.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": give one structured output constraint, not both ", field, " and ", param));
    }
    param = field;
    params.constraint_kind = kind;
    params.constraint = std::move(text);
    return absl::OkStatus();
  };
  // A schema given as an object or as its JSON text.
  auto schema_text = [](const std::string& field,
                        const json& value) -> absl::StatusOr<std::string> {
    if (value.is_object() || value.is_boolean()) return value.dump();
    if (value.is_string()) return value.get<std::string>();
    return WrongType(field, "a JSON Schema (an object or its JSON text)", value);
  };
  auto choices_text = [](const std::string& field,
                         const json& value) -> absl::StatusOr<std::string> {
    if (!value.is_array() || value.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": must be a non-empty array of strings"));
    }
    for (const json& choice : value) {
      if (!choice.is_string()) return WrongType(field, "an array of strings", choice);
    }
    return value.dump();
  };
  auto string_text = [](const std::string& field,
                        const json& value) -> absl::StatusOr<std::string> {
    if (!value.is_string()) return WrongType(field, "a string", value);
    return value.get<std::string>();
  };
  auto present = [&](const char* field) -> const json* {
    auto it = body.find(field);
    return it == body.end() || it->is_null() ? nullptr : &*it;
  };

  if (const json* format = present("response_format")) {
    if (!format->is_object()) return WrongType("response_format", "an object", *format);
    const json type = format->value("type", json());
    if (type == "json_object") {
      RETURN_IF_ERROR(set("response_format", Kind::kJsonObject, ""));
    } else if (type == "json_schema") {
      auto it = format->find("json_schema");
      if (it == format->end() || !it->is_object()) {
        return absl::InvalidArgumentError(
            "response_format: json_schema needs {\"json_schema\": {\"name\", \"schema\"}}");
      }
      if (auto strict = it->find("strict");
          strict != it->end() && !strict->is_null() && !strict->is_boolean()) {
        return WrongType("response_format", "json_schema.strict as a boolean", *strict);
      }
      auto schema = it->find("schema");
      if (schema == it->end() || schema->is_null()) {
        return absl::InvalidArgumentError("response_format: json_schema.schema is required");
      }
      ASSIGN_OR_RETURN(std::string text, schema_text("response_format", *schema));
      RETURN_IF_ERROR(set("response_format", Kind::kJsonSchema, std::move(text)));
    } else if (type != "text") {
      return absl::InvalidArgumentError(absl::StrCat(
          "response_format: type must be text, json_object or json_schema, got ", type.dump()));
    }
  }
  if (const json* value = present("guided_json")) {
    ASSIGN_OR_RETURN(std::string text, schema_text("guided_json", *value));
    RETURN_IF_ERROR(set("guided_json", Kind::kJsonSchema, std::move(text)));
  }
  if (const json* value = present("guided_regex")) {
    ASSIGN_OR_RETURN(std::string text, string_text("guided_regex", *value));
    RETURN_IF_ERROR(set("guided_regex", Kind::kRegex, std::move(text)));
  }
  if (const json* value = present("guided_choice")) {
    ASSIGN_OR_RETURN(std::string text, choices_text("guided_choice", *value));
    RETURN_IF_ERROR(set("guided_choice", Kind::kChoice, std::move(text)));
  }
  if (const json* value = present("guided_grammar")) {
    ASSIGN_OR_RETURN(std::string text, string_text("guided_grammar", *value));
    RETURN_IF_ERROR(set("guided_grammar", Kind::kGrammar, std::move(text)));
  }
  if (const json* outputs = present("structured_outputs")) {
    constexpr char kField[] = "structured_outputs";
    if (!outputs->is_object()) return WrongType(kField, "an object", *outputs);
    for (const auto& [key, value] : outputs->items()) {
      if (value.is_null()) continue;
      if (key == "json") {
        ASSIGN_OR_RETURN(std::string text, schema_text(kField, value));
        RETURN_IF_ERROR(set(kField, Kind::kJsonSchema, std::move(text)));
      } else if (key == "regex") {
        ASSIGN_OR_RETURN(std::string text, string_text(kField, value));
        RETURN_IF_ERROR(set(kField, Kind::kRegex, std::move(text)));
      } else if (key == "choice") {
        ASSIGN_OR_RETURN(std::string text, choices_text(kField, value));
        RETURN_IF_ERROR(set(kField, Kind::kChoice, std::move(text)));
      } else if (key == "grammar") {
        ASSIGN_OR_RETURN(std::string text, string_text(kField, value));
        RETURN_IF_ERROR(set(kField, Kind::kGrammar, std::move(text)));
      } else if (key == "json_object") {
        if (!value.is_boolean()) return WrongType(kField, "json_object as a boolean", value);
        if (value.get<bool>()) RETURN_IF_ERROR(set(kField, Kind::kJsonObject, ""));
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat(kField, ": unsupported key \"", key,
                         "\" (supported: json, regex, choice, grammar, json_object)"));
      }
    }
  }
  return absl::OkStatus();
}

double FiniteLogprob(float logprob) {
  // JSON has no infinities; vLLM reports -9999.0 for them.
  return std::isfinite(logprob) ? static_cast<double>(logprob) : -9999.0;
}

std::string TokenText(const Tokenizer& tokenizer, int32_t id) {
  return tokenizer.Decode({id}, /*skip_special_tokens=*/false);
}

json BytesJson(const std::string& text) {
  json bytes = json::array();
  for (char c : text) bytes.push_back(static_cast<int>(static_cast<unsigned char>(c)));
  return bytes;
}

// Pagoda's extension `timeout`: the request's own limit in seconds, a day at most (gRPC clients
// have the call's deadline).
constexpr double kMaxTimeoutS = 86400;

// vLLM's chat_template_kwargs: more variables for the chat template (Qwen3's enable_thinking).
// The ones the server sets itself are refused rather than silently overridden.
absl::Status ReadChatTemplateKwargs(const json& body, json& out) {
  auto it = body.find("chat_template_kwargs");
  if (it == body.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_object()) return WrongType("chat_template_kwargs", "an object", *it);
  for (const auto& item : it->items()) {
    for (const char* reserved :
         {"messages", "add_generation_prompt", "tools", "bos_token", "eos_token"}) {
      if (item.key() == reserved) {
        return absl::InvalidArgumentError(absl::StrCat(
            "chat_template_kwargs: \"", reserved, "\" is set by the server, not by the request"));
      }
    }
  }
  out = *it;
  return absl::OkStatus();
}

absl::Status ReadTimeout(const json& body, std::optional<double>& timeout_s) {
  auto it = body.find("timeout");
  if (it == body.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_number()) return WrongType("timeout", "a number of seconds", *it);
  const double value = it->get<double>();
  if (!(value > 0 && value <= kMaxTimeoutS)) {
    return absl::InvalidArgumentError(
        absl::StrCat("timeout: must be more than 0 and at most ", kMaxTimeoutS, " seconds"));
  }
  timeout_s = value;
  return absl::OkStatus();
}

// OpenAI's / vLLM V0's best_of, read after `params` (n, beam search, logprobs) and `stream`.
absl::Status ReadBestOf(const json& body, bool stream, SamplingParams& params, BestOf& best_of) {
  best_of = {.n = params.n, .candidates = params.n};
  auto it = body.find("best_of");
  if (it == body.end() || it->is_null()) return absl::OkStatus();
  bool use_beam_search = false;
  RETURN_IF_ERROR(ReadBool(body, "use_beam_search", use_beam_search));
  if (use_beam_search) return absl::OkStatus();  // SamplingParams::FromJson: the beam width
  if (!it->is_number_integer()) return WrongType("best_of", "an integer", *it);
  const int64_t value = it->is_number_unsigned()
                            ? static_cast<int64_t>(std::min<uint64_t>(
                                  it->get<uint64_t>(), std::numeric_limits<int64_t>::max()))
                            : it->get<int64_t>();
  if (value < 1 || value > SamplingParams::kMaxN) {
    return absl::InvalidArgumentError(
        absl::StrCat("best_of: must be in [1, ", SamplingParams::kMaxN, "], got ", value));
  }
  if (value < params.n) {
    return absl::InvalidArgumentError(
        absl::StrCat("best_of: must be at least n = ", params.n, ", got ", value));
  }
  if (value == params.n) return absl::OkStatus();
  if (params.beam_search()) {
    return absl::InvalidArgumentError(
        "best_of: sampling candidates cannot be combined with beam_width (use_beam_search with "
        "best_of sets the beam width)");
  }
  if (stream) {
    return absl::InvalidArgumentError(
        "best_of: cannot be used with stream (the best candidates are known only at the end)");
  }
  best_of.candidates = static_cast<int32_t>(value);
  params.n = best_of.candidates;
  if (params.logprobs < 0) {
    params.logprobs = 0;
    best_of.internal_logprobs = true;
  }
  return absl::OkStatus();
}

// Fields both endpoints read: OpenAI's, then vLLM's extensions (sampling, structured outputs),
// then Pagoda's (timeout).
constexpr std::string_view kCommonFields[] = {"model",
                                              "max_tokens",
                                              "temperature",
                                              "top_p",
                                              "n",
                                              "stop",
                                              "seed",
                                              "presence_penalty",
                                              "frequency_penalty",
                                              "stream",
                                              "stream_options",
                                              "user",
                                              "response_format",
                                              "top_k",
                                              "min_p",
                                              "repetition_penalty",
                                              "min_tokens",
                                              "ignore_eos",
                                              "include_stop_str_in_output",
                                              "skip_special_tokens",
                                              "disable_speculative_decoding",
                                              "stop_token_ids",
                                              "logit_bias",
                                              "allowed_token_ids",
                                              "bad_words",
                                              "use_beam_search",
                                              "best_of",
                                              "beam_width",
                                              "length_penalty",
                                              "add_special_tokens",
                                              "guided_json",
                                              "guided_regex",
                                              "guided_choice",
                                              "guided_grammar",
                                              "structured_outputs",
                                              "timeout"};
constexpr std::string_view kCompletionFields[] = {"prompt", "echo", "logprobs"};
constexpr std::string_view kChatFields[] = {
    "messages", "logprobs",    "top_logprobs",        "max_completion_tokens",
    "tools",    "tool_choice", "parallel_tool_calls", "chat_template_kwargs"};

template <size_t N>
bool Contains(const std::string_view (&list)[N], const std::string& field) {
  return std::find(std::begin(list), std::end(list), field) != std::end(list);
}

absl::Status CheckFields(const json& body, bool (*known)(const std::string&)) {
  for (const auto& item : body.items()) {
    if (!known(item.key())) {
      return absl::InvalidArgumentError(
          absl::StrCat(item.key(), ": unknown or unsupported field (see docs/api.md)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

bool IsKnownCompletionField(const std::string& field) {
  return Contains(kCommonFields, field) || Contains(kCompletionFields, field);
}

bool IsKnownChatCompletionField(const std::string& field) {
  return Contains(kCommonFields, field) || Contains(kChatFields, field);
}

// `json` keeps an object's keys sorted, but a JSON Schema's property order is the order the
// output writes them in (OpenAI's structured outputs: "in the same order as the keys in the
// schema"; a "reasoning" key before an "answer" one is the common use). So a body with a schema
// field is parsed again with its keys in order, and each schema object is replaced by its JSON
// text in that order, which ReadConstraint takes as it takes a schema given as text.
void KeepSchemaKeyOrder(std::string_view text, json& body) {
  const bool has_schema =
      body.contains("guided_json") ||
      (body.contains("response_format") && body["response_format"].is_object()) ||
      (body.contains("structured_outputs") && body["structured_outputs"].is_object());
  if (!has_schema) return;
  const nlohmann::ordered_json ordered =
      nlohmann::ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!ordered.is_object()) return;
  // The schema at `path` in both documents, when it is an object in both.
  const auto keep = [&](std::initializer_list<const char*> path) {
    json* to = &body;
    const nlohmann::ordered_json* from = &ordered;
    for (const char* key : path) {
      if (!to->is_object() || !from->is_object() || !to->contains(key) || !from->contains(key)) {
        return;
      }
      to = &(*to)[key];
      from = &(*from)[key];
    }
    if (to->is_object() && from->is_object()) *to = from->dump();
  };
  keep({"guided_json"});
  keep({"response_format", "json_schema", "schema"});
  keep({"structured_outputs", "json"});
}

absl::StatusOr<json> ParseJsonBody(std::string_view body) {
  // nlohmann rejects ill-formed UTF-8 inside strings, so nothing invalid reaches a later dump.
  absl::StatusOr<json> parsed = ParseJson(body);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("body: ", parsed.status().message()));
  }
  if (!parsed->is_object()) return WrongType("body", "a JSON object", *parsed);
  KeepSchemaKeyOrder(body, *parsed);
  return parsed;
}

absl::StatusOr<CompletionRequest> ParseCompletionRequest(const json& body) {
  RETURN_IF_ERROR(CheckFields(body, IsKnownCompletionField));
  CompletionRequest request;
  RETURN_IF_ERROR(ReadString(body, "model", request.model));
  ASSIGN_OR_RETURN(SamplingParams params, ReadSamplingParams(body));
  std::string constraint_param;
  RETURN_IF_ERROR(ReadConstraint(body, params, constraint_param));
  std::string user;  // accepted, ignored
  RETURN_IF_ERROR(ReadString(body, "user", user));
  RETURN_IF_ERROR(ReadBool(body, "echo", request.echo));
  RETURN_IF_ERROR(ReadStream(body, request.stream, request.include_usage));
  RETURN_IF_ERROR(ReadBestOf(body, request.stream, params, request.best_of));
  RETURN_IF_ERROR(ReadTimeout(body, request.timeout_s));
  bool add_special_tokens = true;  // vLLM's extension: BOS before a text prompt
  RETURN_IF_ERROR(ReadBool(body, "add_special_tokens", add_special_tokens));
  ASSIGN_OR_RETURN(request.prompts, ParsePrompts(body));
  for (GenerationInput& input : request.prompts) {
    input.model = request.model;
    input.params = params;
    input.constraint_param = constraint_param;
    input.add_special_tokens = add_special_tokens;
  }
  return request;
}

absl::StatusOr<ChatCompletionRequest> ParseChatCompletionRequest(const json& body) {
  RETURN_IF_ERROR(CheckFields(body, IsKnownChatCompletionField));
  ChatCompletionRequest request;
  RETURN_IF_ERROR(ReadString(body, "model", request.model));
  ASSIGN_OR_RETURN(request.messages, ParseMessages(body));
  RETURN_IF_ERROR(ReadChatTools(body, request.tools));
  RETURN_IF_ERROR(ReadChatTemplateKwargs(body, request.chat_template_kwargs));
  // Chat's logprobs is a boolean with top_logprobs beside it; the rest reads as completions.
  json sampling = body;
  sampling.erase("logprobs");
  sampling.erase("top_logprobs");
  if (auto it = body.find("max_completion_tokens"); it != body.end() && !it->is_null()) {
    if (!it->is_number_integer()) return WrongType("max_completion_tokens", "an integer", *it);
    sampling["max_tokens"] = *it;
  }
  ASSIGN_OR_RETURN(request.params, ReadSamplingParams(sampling));
  RETURN_IF_ERROR(ReadConstraint(body, request.params, request.constraint_param));
  request.max_tokens_given = sampling.contains("max_tokens") && !sampling["max_tokens"].is_null();
  bool logprobs = false;
  RETURN_IF_ERROR(ReadBool(body, "logprobs", logprobs));
  int32_t top_logprobs = 0;
  if (auto it = body.find("top_logprobs"); it != body.end() && !it->is_null()) {
    if (!it->is_number_integer()) return WrongType("top_logprobs", "an integer", *it);
    const int64_t value = it->get<int64_t>();
    if (value < 0 || value > SamplingParams::kMaxLogprobs) {
      return absl::InvalidArgumentError(
          absl::StrCat("top_logprobs: must be in [0, ", SamplingParams::kMaxLogprobs, "]"));
    }
    if (!logprobs && value > 0) {
      return absl::InvalidArgumentError("top_logprobs: needs logprobs to be true");
    }
    top_logprobs = static_cast<int32_t>(value);
  }
  request.params.logprobs = logprobs ? top_logprobs : -1;
  std::string user;
  RETURN_IF_ERROR(ReadString(body, "user", user));
  RETURN_IF_ERROR(ReadBool(body, "add_special_tokens", request.add_special_tokens));
  RETURN_IF_ERROR(ReadStream(body, request.stream, request.include_usage));
  RETURN_IF_ERROR(ReadBestOf(body, request.stream, request.params, request.best_of));
  RETURN_IF_ERROR(ReadTimeout(body, request.timeout_s));
  return request;
}

absl::StatusOr<TokenizeRequest> ParseTokenizeRequest(const json& body) {
  static constexpr std::string_view kFields[] = {"model",
                                                 "prompt",
                                                 "messages",
                                                 "add_special_tokens",
                                                 "add_generation_prompt",
                                                 "return_token_strs",
                                                 "tools",
                                                 "chat_template_kwargs"};
  RETURN_IF_ERROR(CheckFields(body, [](const std::string& field) {
    return std::find(std::begin(kFields), std::end(kFields), field) != std::end(kFields);
  }));
  TokenizeRequest request;
  RETURN_IF_ERROR(ReadString(body, "model", request.model));
  const bool has_prompt = body.contains("prompt") && !body["prompt"].is_null();
  const bool has_messages = body.contains("messages") && !body["messages"].is_null();
  if (has_prompt == has_messages) {
    return absl::InvalidArgumentError("prompt: give either prompt or messages");
  }
  if (has_prompt) {
    std::string prompt;
    RETURN_IF_ERROR(ReadString(body, "prompt", prompt));
    request.prompt = std::move(prompt);
    for (const char* field : {"add_generation_prompt", "tools", "chat_template_kwargs"}) {
      if (body.contains(field) && !body[field].is_null()) {
        return absl::InvalidArgumentError(absl::StrCat(field, ": only with messages"));
      }
    }
  } else {
    ASSIGN_OR_RETURN(request.messages, ParseMessages(body));
    // As chat completions: the template writes BOS itself.
    request.add_special_tokens = false;
    RETURN_IF_ERROR(ReadBool(body, "add_generation_prompt", request.add_generation_prompt));
    ChatTools tools;
    RETURN_IF_ERROR(ReadChatTools(body, tools));
    request.tools = std::move(tools.tools);
    RETURN_IF_ERROR(ReadChatTemplateKwargs(body, request.chat_template_kwargs));
  }
  RETURN_IF_ERROR(ReadBool(body, "add_special_tokens", request.add_special_tokens));
  RETURN_IF_ERROR(ReadBool(body, "return_token_strs", request.return_token_strs));
  return request;
}

absl::StatusOr<DetokenizeRequest> ParseDetokenizeRequest(const json& body) {
  RETURN_IF_ERROR(CheckFields(
      body, [](const std::string& field) { return field == "model" || field == "tokens"; }));
  DetokenizeRequest request;
  RETURN_IF_ERROR(ReadString(body, "model", request.model));
  auto it = body.find("tokens");
  if (it == body.end() || it->is_null()) return absl::InvalidArgumentError("tokens: is required");
  if (!it->is_array()) return WrongType("tokens", "an array of token ids", *it);
  request.tokens.reserve(it->size());
  for (const json& token : *it) {
    if (!token.is_number_integer()) return WrongType("tokens", "an array of token ids", token);
    const int64_t id = token.get<int64_t>();
    if (id < 0 || id > std::numeric_limits<int32_t>::max()) {
      return absl::InvalidArgumentError(absl::StrCat("tokens: ", id, " is not a token id"));
    }
    request.tokens.push_back(static_cast<int32_t>(id));
  }
  return request;
}

std::vector<CompletionOutput> RankBestOf(std::vector<CompletionOutput> outputs, int32_t n) {
  // A missing or NaN sum ranks last (NaN would break the sort's strict weak ordering).
  const auto key = [](const CompletionOutput& output) {
    constexpr double kNone = -std::numeric_limits<double>::infinity();
    const double sum = output.cumulative_logprob.value_or(kNone);
    return std::isnan(sum) ? kNone : sum;
  };
  std::stable_sort(outputs.begin(), outputs.end(), [&key](const auto& a, const auto& b) {
    const double left = key(a);
    const double right = key(b);
    if (left != right) return left > right;
    return a.index < b.index;
  });
  if (outputs.size() > static_cast<size_t>(std::max(n, 0))) outputs.resize(std::max(n, 0));
  for (size_t i = 0; i < outputs.size(); ++i) outputs[i].index = static_cast<int32_t>(i);
  return outputs;
}

json ErrorJson(int http_status, const std::string& message, const std::string& param) {
  std::string type = "InternalServerError";
  switch (http_status) {
    case 400:
    case 413:
      type = "BadRequestError";
      break;
    case 401:
      type = "AuthenticationError";
      break;
    case 404:
      type = "NotFoundError";
      break;
    case 405:
      type = "MethodNotAllowedError";
      break;
    case 408:
      type = "TimeoutError";
      break;
    case 429:
      type = "RateLimitError";
      break;
    case 501:
      type = "NotImplementedError";
      break;
    case 503:
      type = "ServiceUnavailableError";
      break;
  }
  return {{"error",
           {{"message", message},
            {"type", http_status == 400 ? std::string("invalid_request_error") : type},
            {"param", param.empty() ? json() : json(param)},
            {"code", http_status}}}};
}

json FinishReasonJson(const CompletionOutput& out) {
  if (!out.finish_reason.has_value()) return json();
  return std::string(FinishReasonName(*out.finish_reason));
}

json StopReasonJson(const CompletionOutput& out) {
  if (const auto* text = std::get_if<std::string>(&out.stop_reason)) return *text;
  if (const auto* id = std::get_if<int32_t>(&out.stop_reason)) return *id;
  return json();
}

json UsageJson(const Usage& usage) {
  return {{"prompt_tokens", usage.prompt_tokens},
          {"completion_tokens", usage.completion_tokens},
          {"total_tokens", usage.prompt_tokens + usage.completion_tokens}};
}

json CompletionLogprobsJson(const CompletionOutput& out, const Tokenizer& tokenizer,
                            int64_t text_offset) {
  json tokens = json::array(), token_logprobs = json::array(), top = json::array(),
       offsets = json::array();
  const size_t count = std::min(out.logprobs.size(), out.token_ids.size());
  for (size_t i = 0; i < count; ++i) {
    const std::string text = TokenText(tokenizer, out.token_ids[i]);
    tokens.push_back(text);
    token_logprobs.push_back(FiniteLogprob(out.logprobs[i]));
    json alternatives = json::object();
    if (i < out.top_logprobs.size()) {
      for (const auto& [id, logprob] : out.top_logprobs[i]) {
        const std::string alternative = TokenText(tokenizer, id);
        if (!alternatives.contains(alternative)) alternatives[alternative] = FiniteLogprob(logprob);
      }
    }
    if (!alternatives.contains(text)) alternatives[text] = FiniteLogprob(out.logprobs[i]);
    top.push_back(std::move(alternatives));
    offsets.push_back(text_offset);
    text_offset += static_cast<int64_t>(text.size());
  }
  return {{"tokens", tokens},
          {"token_logprobs", token_logprobs},
          {"top_logprobs", top},
          {"text_offset", offsets}};
}

json ChatLogprobsJson(const CompletionOutput& out, const Tokenizer& tokenizer,
                      int32_t top_logprobs) {
  json content = json::array();
  const size_t count = std::min(out.logprobs.size(), out.token_ids.size());
  for (size_t i = 0; i < count; ++i) {
    const std::string text = TokenText(tokenizer, out.token_ids[i]);
    json top = json::array();
    if (i < out.top_logprobs.size()) {
      for (const auto& [id, logprob] : out.top_logprobs[i]) {
        if (static_cast<int32_t>(top.size()) >= top_logprobs) break;
        const std::string alternative = TokenText(tokenizer, id);
        top.push_back({{"token", alternative},
                       {"logprob", FiniteLogprob(logprob)},
                       {"bytes", BytesJson(alternative)}});
      }
    }
    content.push_back({{"token", text},
                       {"logprob", FiniteLogprob(out.logprobs[i])},
                       {"bytes", BytesJson(text)},
                       {"top_logprobs", std::move(top)}});
  }
  return {{"content", std::move(content)}};
}

json CompletionChoiceJson(int32_t index, const CompletionOutput& out, const std::string& prefix,
                          bool logprobs, const Tokenizer& tokenizer, int64_t text_offset) {
  return {
      {"index", index},
      {"text", prefix + out.text},
      {"logprobs", logprobs ? CompletionLogprobsJson(
                                  out, tokenizer, text_offset + static_cast<int64_t>(prefix.size()))
                            : json()},
      {"finish_reason", FinishReasonJson(out)},
      {"stop_reason", StopReasonJson(out)}};
}

json ChatChoiceJson(int32_t index, const CompletionOutput& out, int32_t top_logprobs, bool logprobs,
                    const Tokenizer& tokenizer) {
  return {{"index", index},
          {"message", {{"role", "assistant"}, {"content", out.text}}},
          {"logprobs", logprobs ? ChatLogprobsJson(out, tokenizer, top_logprobs) : json()},
          {"finish_reason", FinishReasonJson(out)},
          {"stop_reason", StopReasonJson(out)}};
}

json ChatChunkChoiceJson(int32_t index, const CompletionOutput& out, int32_t top_logprobs,
                         bool logprobs, const Tokenizer& tokenizer) {
  return {{"index", index},
          {"delta", {{"content", out.text}}},
          {"logprobs", logprobs ? ChatLogprobsJson(out, tokenizer, top_logprobs) : json()},
          {"finish_reason", FinishReasonJson(out)},
          {"stop_reason", StopReasonJson(out)}};
}

json EnvelopeJson(const std::string& id, const std::string& object, int64_t created,
                  const std::string& model) {
  return {{"id", id},
          {"object", object},
          {"created", created},
          {"model", model},
          {"choices", json::array()}};
}

std::string DumpJson(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace pagoda
