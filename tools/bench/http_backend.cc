#include "tools/bench/http_backend.h"

#include <httplib.h>

#include <chrono>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "nlohmann/json.hpp"

namespace pagoda {
namespace {

constexpr int kConnectTimeoutSeconds = 10;
constexpr size_t kMaxErrorBytes = 512;

// The OpenAI error's message in `body`, or the body itself (shortened).
std::string ErrorMessage(const std::string& body) {
  const nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_object() && j.contains("error") && j["error"].is_object() &&
      j["error"].contains("message") && j["error"]["message"].is_string()) {
    return j["error"]["message"].get<std::string>();
  }
  return body.substr(0, kMaxErrorBytes);
}

std::string Describe(httplib::Error error) {
  switch (error) {
    case httplib::Error::Connection:
      return "cannot connect";
    case httplib::Error::Read:
      return "reading the response failed (the server closed or reset the connection)";
    case httplib::Error::Write:
      return "sending the request failed (the server closed or reset the connection)";
    default:
      return httplib::to_string(error);
  }
}

// Reads a completions SSE stream as it arrives.
class SseReader {
 public:
  // keep_text: collect the streamed text (a constrained request's, to check it).
  SseReader(ChunkTimer* timer, bool keep_text) : timer_(timer), keep_text_(keep_text) {}

  void Append(const char* data, size_t size) {
    absl::StrAppend(&raw_, absl::string_view(data, size));
    absl::StrAppend(&pending_, absl::StrReplaceAll(absl::string_view(data, size), {{"\r", ""}}));
    for (size_t end; (end = pending_.find("\n\n")) != std::string::npos;) {
      const std::string event = pending_.substr(0, end);
      pending_.erase(0, end + 2);
      OnEvent(event);
    }
  }

  const std::string& raw() const { return raw_; }
  bool done() const { return done_; }
  const std::optional<nlohmann::json>& usage() const { return usage_; }
  const std::string& error() const { return error_; }
  const std::string& text() const { return text_; }
  const std::string& finish_reason() const { return finish_reason_; }

 private:
  void OnEvent(const std::string& event) {
    for (absl::string_view line : absl::StrSplit(event, '\n')) {
      if (!absl::ConsumePrefix(&line, "data:")) continue;  // comments (keep-alive), other fields
      line = absl::StripLeadingAsciiWhitespace(line);
      if (line == "[DONE]") {
        done_ = true;
        continue;
      }
      const nlohmann::json chunk = nlohmann::json::parse(line, nullptr, false);
      if (!chunk.is_object()) {
        error_ = absl::StrCat("malformed SSE chunk: ", line.substr(0, kMaxErrorBytes));
        continue;
      }
      if (chunk.contains("error")) {
        error_ = ErrorMessage(chunk.dump());
        continue;
      }
      // vLLM's rule: a chunk with choices is output; the usage chunk has none.
      if (chunk.contains("choices") && chunk["choices"].is_array() && !chunk["choices"].empty()) {
        timer_->OnOutputChunk();
        const nlohmann::json& choice = chunk["choices"][0];
        if (choice.is_object()) {
          if (keep_text_ && choice.contains("text") && choice["text"].is_string()) {
            text_ += choice["text"].get<std::string>();
          }
          if (choice.contains("finish_reason") && choice["finish_reason"].is_string()) {
            finish_reason_ = choice["finish_reason"].get<std::string>();
          }
        }
      }
      if (chunk.contains("usage") && chunk["usage"].is_object()) usage_ = chunk["usage"];
    }
  }

  ChunkTimer* timer_;
  const bool keep_text_;
  std::string raw_;
  std::string pending_;
  bool done_ = false;
  std::optional<nlohmann::json> usage_;
  std::string error_;
  std::string text_;
  std::string finish_reason_;
};

}  // namespace

absl::StatusOr<ServedModel> HttpBackend::GetServedModel() {
  httplib::Client client(host_, port_);
  client.set_connection_timeout(kConnectTimeoutSeconds);
  httplib::Headers headers;
  if (!api_key_.empty()) headers.emplace("Authorization", absl::StrCat("Bearer ", api_key_));
  const httplib::Result result = client.Get("/v1/models", headers);
  const std::string where = absl::StrCat("GET http://", host_, ":", port_, "/v1/models");
  if (!result)
    return absl::UnavailableError(absl::StrCat(where, " failed: ", Describe(result.error())));
  if (result->status != 200) {
    return absl::UnavailableError(
        absl::StrCat(where, ": HTTP ", result->status, ": ", ErrorMessage(result->body)));
  }
  const nlohmann::json j = nlohmann::json::parse(result->body, nullptr, false);
  if (!j.is_object() || !j.contains("data") || !j["data"].is_array() || j["data"].empty() ||
      !j["data"][0].is_object() || !j["data"][0].contains("id") ||
      !j["data"][0]["id"].is_string()) {
    return absl::UnavailableError(absl::StrCat(where, ": no model in the answer"));
  }
  const nlohmann::json& model = j["data"][0];
  return ServedModel{.id = model["id"].get<std::string>(),
                     .max_model_len = model.value("max_model_len", int64_t{0})};
}

RequestRecord HttpBackend::Send(const BenchRequest& request, const RequestParams& params) {
  const bool constrained = !request.json_schema.empty();
  nlohmann::json body = {{"model", params.model},
                         {"prompt", request.prompt},
                         {"max_tokens", request.output_len},
                         {"temperature", params.temperature},
                         {"ignore_eos", params.ignore_eos && !constrained},
                         {"stream", true},
                         {"stream_options", {{"include_usage", true}}}};
  if (constrained) {
    body["response_format"] = {
        {"type", "json_schema"},
        {"json_schema",
         {{"name", "bench"},
          {"strict", true},
          {"schema", nlohmann::json::parse(request.json_schema, nullptr, false)}}}};
  }
  httplib::Client client(host_, port_);
  client.set_connection_timeout(kConnectTimeoutSeconds);
  const auto timeout = absl::ToChronoSeconds(params.timeout);
  client.set_read_timeout(timeout);
  client.set_write_timeout(timeout);

  httplib::Request http;
  http.method = "POST";
  http.path = "/v1/completions";
  http.set_header("Content-Type", "application/json");
  http.set_header("Accept", "text/event-stream");
  if (!api_key_.empty()) http.set_header("Authorization", absl::StrCat("Bearer ", api_key_));
  http.body = body.dump();

  RequestRecord record;
  ChunkTimer timer;
  SseReader reader(&timer, constrained);
  const absl::Time deadline = absl::Now() + params.timeout;
  bool timed_out = false;
  http.content_receiver = [&](const char* data, size_t size, uint64_t, uint64_t) {
    reader.Append(data, size);
    timed_out = absl::Now() > deadline;
    return !timed_out;
  };
  httplib::Response response;
  httplib::Error error = httplib::Error::Success;
  const bool sent = client.send(http, response, error);
  timer.Finish(record);
  record.constrained = constrained;
  record.output_text = reader.text();
  record.finish_reason = reader.finish_reason();
  if (timed_out) {
    record.error = absl::StrCat("timed out after ", absl::FormatDuration(params.timeout));
  } else if (!sent) {
    record.error = absl::StrCat("HTTP request failed: ", Describe(error));
  } else if (response.status != 200) {
    record.error = absl::StrCat("HTTP ", response.status, ": ", ErrorMessage(reader.raw()));
  } else if (!reader.error().empty()) {
    record.error = reader.error();
  } else if (!reader.done()) {
    record.error = "the stream ended without data: [DONE]";
  } else if (!reader.usage().has_value()) {
    record.error = "the stream carried no usage (stream_options.include_usage)";
  } else {
    record.success = true;
    record.prompt_tokens = reader.usage()->value("prompt_tokens", int64_t{0});
    record.output_tokens = reader.usage()->value("completion_tokens", int64_t{0});
  }
  return record;
}

}  // namespace pagoda
