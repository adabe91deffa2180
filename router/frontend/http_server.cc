#include "router/frontend/http_server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <optional>
#include <random>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/chat_template/chat_template.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "router/frontend/api_keys.h"
#include "router/frontend/openai_protocol.h"
#include "router/frontend/tool_call_streamer.h"

namespace pagoda {
namespace {

using nlohmann::json;

constexpr absl::Duration kPollInterval = absl::Milliseconds(20);
// An idle stream sends an SSE comment this often, so a client that left is noticed.
constexpr absl::Duration kKeepAliveInterval = absl::Seconds(1);
constexpr char kJson[] = "application/json";
constexpr int kListenBacklog = 1024;

struct KnownRoute {
  const char* path;
  const char* method;
};
constexpr KnownRoute kRoutes[] = {{"/v1/completions", "POST"}, {"/v1/chat/completions", "POST"},
                                  {"/v1/models", "GET"},       {"/tokenize", "POST"},
                                  {"/detokenize", "POST"},     {"/health", "GET"},
                                  {"/ready", "GET"},           {"/metrics", "GET"}};

void ReplyError(httplib::Response& res, int status, const std::string& message,
                const std::string& param = "") {
  res.status = status;
  // Overload and drain are passing: a client (the openai one honours it) may retry in a second,
  // and a load balancer will by then send it to another instance.
  if (status == 429 || status == 503) res.set_header("Retry-After", "1");
  res.set_content(DumpJson(ErrorJson(status, message, param)), kJson);
}

int HttpStatus(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kAlreadyExists:
      return 400;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kUnavailable:
      return 503;
    default:
      return 500;
  }
}

void ReplyStatus(httplib::Response& res, const absl::Status& status) {
  ReplyError(res, HttpStatus(status), std::string(status.message()), InvalidField(status));
}

std::string Sse(const json& event) { return absl::StrCat("data: ", DumpJson(event), "\n\n"); }

// A route's body parsed by `parse` and naming the served model; nullopt once an error (bad JSON,
// a bad field, another model) was answered.
template <typename Request>
std::optional<Request> ParseForModel(const Frontend& frontend, const httplib::Request& req,
                                     httplib::Response& res,
                                     absl::StatusOr<Request> (*parse)(const json&)) {
  absl::StatusOr<json> body = ParseJsonBody(req.body);
  absl::StatusOr<Request> request =
      body.ok() ? parse(*body) : absl::StatusOr<Request>(body.status());
  absl::Status status = request.ok() ? frontend.CheckModel(request->model) : request.status();
  if (!status.ok()) {
    ReplyStatus(res, status);
    return std::nullopt;
  }
  return *std::move(request);
}

// One completions or chat request being served: a session per prompt, and what each choice has
// been sent so far.
struct Job {
  const Tokenizer* tokenizer = nullptr;
  const Clock* clock = nullptr;  // the Frontend's: creation time and keep-alive pacing
  bool chat = false;
  std::string id;
  std::string model;
  int64_t created = 0;
  int32_t n = 1;        // choices returned per prompt
  int32_t best_of = 1;  // candidates sampled per prompt (> n: the n best are returned)
  bool logprobs = false;
  int32_t top_logprobs = 0;  // chat
  bool include_usage = false;
  std::optional<double> timeout_s;                        // the request's `timeout`
  absl::Time deadline = absl::InfiniteFuture();           // on `clock`
  std::vector<std::unique_ptr<RequestSession>> sessions;  // per prompt
  std::vector<std::string> prefixes;                      // per prompt: echoed prompt text
  std::vector<bool> finished;                             // per prompt
  Usage usage;
  // Streaming: whether the chat role chunk went out; per choice (prompt * n + index), whether
  // its echo went out and its text offset.
  bool role_sent = false;
  std::vector<bool> echoed;
  std::vector<int64_t> text_offsets;
  // Chat with tools offered and parsed: the format, and per choice its streamer.
  std::optional<ToolCallFormat> tool_format;
  std::vector<std::unique_ptr<ToolCallStreamer>> streamers;
  std::mt19937_64 call_ids{std::random_device()()};

  std::string NewCallId() { return absl::StrFormat("call_%016x", call_ids()); }

  const char* object() const { return chat ? "chat.completion.chunk" : "text_completion"; }
  void CancelAll() {
    for (auto& session : sessions) session->Cancel();
  }
  // Past its `timeout`: the error for the client, after which every session is cancelled.
  std::optional<std::string> TimedOut() const {
    if (clock->Now() < deadline) return std::nullopt;
    return absl::StrCat("timeout: the request ran past its ", *timeout_s,
                        " s timeout and was aborted");
  }
  bool AllFinished() const {
    return std::all_of(finished.begin(), finished.end(), [](bool f) { return f; });
  }
  void Count(const RequestOutput& delta) {
    if (!delta.usage.has_value()) return;
    usage.prompt_tokens += delta.usage->prompt_tokens;
    usage.completion_tokens += delta.usage->completion_tokens;
  }
};

// Submits every input; on the first refusal the sessions already started are dropped (which
// aborts them) and the refusal is returned.
absl::Status StartJob(Frontend& frontend, std::vector<GenerationInput> inputs,
                      std::vector<std::string> prefixes, Job& job) {
  for (GenerationInput& input : inputs) {
    absl::StatusOr<std::unique_ptr<RequestSession>> session = frontend.Submit(std::move(input));
    if (!session.ok()) return session.status();
    job.sessions.push_back(std::move(*session));
  }
  job.prefixes = std::move(prefixes);
  job.prefixes.resize(job.sessions.size());
  job.finished.assign(job.sessions.size(), false);
  job.echoed.assign(job.sessions.size() * job.n, false);
  job.text_offsets.assign(job.sessions.size() * job.n, 0);
  if (job.tool_format.has_value()) {
    for (size_t i = 0; i < job.echoed.size(); ++i) {
      job.streamers.push_back(
          std::make_unique<ToolCallStreamer>(*job.tool_format, [&job] { return job.NewCallId(); }));
    }
  }
  job.id = absl::StrCat(job.chat ? "chat" : "", job.sessions.front()->request_id());
  return absl::OkStatus();
}

// "tool_calls" in place of "stop" when the output made calls.
void MarkToolCalls(json& choice) {
  if (choice["finish_reason"] == "stop") choice["finish_reason"] = "tool_calls";
}

// A streamed chat choice with tools: its content and tool-call deltas, one tool-call delta per
// part (OpenAI streams a call's opening and each arguments fragment as chunks of their own); the
// finish reason goes on the last part. Nothing while all is held back.
std::vector<json> ToolCallChunkChoices(ToolCallStreamer& streamer, const CompletionOutput& out,
                                       json choice, bool logprobs) {
  const bool finished = out.finish_reason.has_value();
  ToolCallStreamDelta delta = streamer.Push(out.text, finished);
  std::vector<json> parts;
  if (delta.empty() && !finished && !logprobs) return parts;
  json first = choice;
  first["delta"] = json::object();
  if (!delta.content.empty()) first["delta"]["content"] = delta.content;
  parts.push_back(std::move(first));
  for (size_t i = 0; i < delta.calls.size(); ++i) {
    if (i > 0) {
      parts.push_back({{"index", choice["index"]},
                       {"delta", json::object()},
                       {"logprobs", nullptr},
                       {"finish_reason", nullptr}});
    }
    parts.back()["delta"]["tool_calls"] = ToolCallDeltasJson({delta.calls[i]});
  }
  for (size_t i = 0; i + 1 < parts.size(); ++i) parts[i]["finish_reason"] = nullptr;
  json& last = parts.back();
  last["finish_reason"] = choice["finish_reason"];
  last["stop_reason"] = choice["stop_reason"];
  if (streamer.num_calls() > 0) MarkToolCalls(last);
  return parts;
}

// The streamed chunks of one prompt's delta: one, or with tool calls as many as the most parts
// of a choice (ToolCallChunkChoices); none when everything is held back.
std::vector<json> Chunks(Job& job, size_t prompt, const RequestOutput& delta) {
  std::vector<json> chunks;
  auto chunk_at = [&](size_t i) -> json& {
    while (chunks.size() <= i) {
      chunks.push_back(EnvelopeJson(job.id, job.object(), job.created, job.model));
      if (job.include_usage) chunks.back()["usage"] = nullptr;
    }
    return chunks[i];
  };
  for (const CompletionOutput& out : delta.outputs) {
    const size_t choice = prompt * job.n + static_cast<size_t>(out.index);
    if (choice >= job.echoed.size()) continue;
    if (job.chat) {
      json choice_json = ChatChunkChoiceJson(static_cast<int32_t>(choice), out, job.top_logprobs,
                                             job.logprobs, *job.tokenizer);
      if (!job.tool_format.has_value()) {
        chunk_at(0)["choices"].push_back(std::move(choice_json));
        continue;
      }
      std::vector<json> parts =
          ToolCallChunkChoices(*job.streamers[choice], out, std::move(choice_json), job.logprobs);
      for (size_t i = 0; i < parts.size(); ++i) {
        chunk_at(i)["choices"].push_back(std::move(parts[i]));
      }
      continue;
    }
    const std::string prefix = job.echoed[choice] ? "" : job.prefixes[prompt];
    job.echoed[choice] = true;
    chunk_at(0)["choices"].push_back(CompletionChoiceJson(static_cast<int32_t>(choice), out, prefix,
                                                          job.logprobs, *job.tokenizer,
                                                          job.text_offsets[choice]));
    job.text_offsets[choice] += static_cast<int64_t>(prefix.size() + out.text.size());
  }
  return chunks;
}

// A non-streamed chat choice with tools: the calls parsed out of its message.
void ApplyToolCalls(ToolCallFormat format, Job& job, json& choice) {
  json& message = choice["message"];
  ParsedToolCalls parsed = ParseToolCalls(format, message["content"].get<std::string>());
  if (parsed.calls.empty()) return;
  message["content"] = parsed.content.has_value() ? json(*parsed.content) : json();
  json calls = json::array();
  for (ToolCall& call : parsed.calls) {
    calls.push_back({{"id", job.NewCallId()},
                     {"type", "function"},
                     {"function", {{"name", call.name}, {"arguments", call.arguments}}}});
  }
  message["tool_calls"] = std::move(calls);
  MarkToolCalls(choice);
}

// OpenAI's first chat chunk: every choice's delta.role, with empty content.
json RoleChunk(const Job& job) {
  json chunk = EnvelopeJson(job.id, job.object(), job.created, job.model);
  for (size_t choice = 0; choice < job.echoed.size(); ++choice) {
    chunk["choices"].push_back({{"index", choice},
                                {"delta", {{"role", "assistant"}, {"content", ""}}},
                                {"logprobs", nullptr},
                                {"finish_reason", nullptr}});
  }
  if (job.include_usage) chunk["usage"] = nullptr;
  return chunk;
}

// Streams a job as SSE; called by httplib until it returns false or the sink is done.
bool StreamStep(Job& job, absl::Time& last_write, httplib::DataSink& sink) {
  auto write = [&](const std::string& data) {
    last_write = job.clock->Now();
    return sink.is_writable() && sink.write(data.data(), data.size());
  };
  auto client_gone = [&] {
    job.CancelAll();  // frees the blocks now, not when the request would have ended
    return false;
  };
  // Headers went out with 200: an error travels as an event, then the stream ends.
  auto end_with_error = [&](int http_status, const std::string& message, const std::string& param) {
    if (!write(Sse(ErrorJson(http_status, message, param)))) return client_gone();
    job.CancelAll();
    std::fill(job.finished.begin(), job.finished.end(), true);
    write("data: [DONE]\n\n");
    sink.done();
    return true;
  };
  if (job.chat && !job.role_sent) {
    job.role_sent = true;
    return write(Sse(RoleChunk(job))) || client_gone();
  }
  while (true) {
    if (const std::optional<std::string> timed_out = job.TimedOut();
        timed_out.has_value() && !job.AllFinished()) {
      return end_with_error(408, *timed_out, "timeout");
    }
    if (job.AllFinished()) {
      if (job.include_usage) {
        json last = EnvelopeJson(job.id, job.object(), job.created, job.model);
        last["usage"] = UsageJson(job.usage);
        if (!write(Sse(last))) return client_gone();
      }
      if (!write("data: [DONE]\n\n")) return client_gone();
      sink.done();
      return true;
    }
    bool wrote = false;
    for (size_t p = 0; p < job.sessions.size(); ++p) {
      if (job.finished[p]) continue;
      // Waits only while nothing was written yet; otherwise just drains.
      std::optional<RequestOutput> delta =
          job.sessions[p]->Next(wrote ? absl::ZeroDuration() : kPollInterval);
      if (!delta.has_value()) continue;
      if (delta->finished) job.finished[p] = true;
      job.Count(*delta);
      if (!delta->error.empty()) return end_with_error(500, delta->error, "");
      if (delta->outputs.empty()) continue;
      for (const json& chunk : Chunks(job, p, *delta)) {
        if (!write(Sse(chunk))) return client_gone();
        wrote = true;
      }
    }
    if (wrote) return true;
    if (job.clock->Now() - last_write >= kKeepAliveInterval && !write(": keep-alive\n\n")) {
      return client_gone();
    }
  }
}

// Waits for every session's last delta; the accumulated output per prompt, or the engine's error.
absl::StatusOr<std::vector<RequestOutput>> Collect(Job& job) {
  // The client sees nothing before the end, so a failed replica's requests may start over.
  for (const std::unique_ptr<RequestSession>& session : job.sessions) session->CollectWhole();
  std::vector<RequestOutput> totals(job.sessions.size());
  for (size_t p = 0; p < job.sessions.size(); ++p) {
    while (!job.finished[p]) {
      if (const std::optional<std::string> timed_out = job.TimedOut(); timed_out.has_value()) {
        job.CancelAll();
        return absl::DeadlineExceededError(*timed_out);
      }
      std::optional<RequestOutput> delta = job.sessions[p]->Next(kPollInterval);
      if (!delta.has_value()) continue;
      if (!delta->error.empty()) {
        job.CancelAll();
        return absl::InternalError(delta->error);
      }
      job.Count(*delta);
      MergeRequestOutput(totals[p], *delta);
      job.finished[p] = delta->finished;
    }
    std::sort(totals[p].outputs.begin(), totals[p].outputs.end(),
              [](const auto& a, const auto& b) { return a.index < b.index; });
  }
  return totals;
}

// Answers with the whole result, or streams it as SSE.
void Respond(std::shared_ptr<Job> job, bool stream, httplib::Response& res) {
  if (stream) {
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [job, last_write = job->clock->Now()](size_t, httplib::DataSink& sink) mutable {
          // httplib's exception handler does not cover content providers.
          try {
            return StreamStep(*job, last_write, sink);
          } catch (const std::exception& e) {
            PAGODA_LOG(error, "HTTP stream failed: {}", e.what());
            job->CancelAll();
            return false;
          }
        },
        [job](bool success) {
          if (!success) job->CancelAll();
        });
    return;
  }
  absl::StatusOr<std::vector<RequestOutput>> totals = Collect(*job);
  if (!totals.ok()) {
    const bool timed_out = absl::IsDeadlineExceeded(totals.status());
    return ReplyError(res, timed_out ? 408 : 500, std::string(totals.status().message()),
                      timed_out ? "timeout" : "");
  }
  if (job->best_of > job->n) {
    for (RequestOutput& total : *totals) {
      total.outputs = RankBestOf(std::move(total.outputs), job->n);
    }
  }
  json response = EnvelopeJson(job->id, job->chat ? "chat.completion" : "text_completion",
                               job->created, job->model);
  for (size_t p = 0; p < totals->size(); ++p) {
    for (const CompletionOutput& out : (*totals)[p].outputs) {
      const int32_t index = static_cast<int32_t>(p) * job->n + out.index;
      json choice =
          job->chat ? ChatChoiceJson(index, out, job->top_logprobs, job->logprobs, *job->tokenizer)
                    : CompletionChoiceJson(index, out, job->prefixes[p], job->logprobs,
                                           *job->tokenizer, 0);
      if (job->tool_format.has_value()) ApplyToolCalls(*job->tool_format, *job, choice);
      response["choices"].push_back(std::move(choice));
    }
  }
  response["usage"] = UsageJson(job->usage);
  res.set_content(DumpJson(response), kJson);
}

// `params` as submitted; best_of: what the client asked (params.n is best_of.candidates).
std::shared_ptr<Job> NewJob(const Frontend& frontend, bool chat, const SamplingParams& params,
                            const BestOf& best_of, bool include_usage,
                            std::optional<double> timeout_s) {
  auto job = std::make_shared<Job>();
  job->tokenizer = &frontend.tokenizer();
  job->clock = &frontend.clock();
  job->chat = chat;
  job->model = frontend.model_name();
  job->created = absl::ToUnixSeconds(job->clock->Now());
  job->n = best_of.n;
  job->best_of = params.n;
  job->logprobs = params.logprobs >= 0 && !best_of.internal_logprobs;
  job->top_logprobs = std::max(params.logprobs, 0);
  job->include_usage = include_usage;
  job->timeout_s = timeout_s;
  if (timeout_s.has_value()) job->deadline = job->clock->Now() + absl::Seconds(*timeout_s);
  return job;
}

// best_of candidates are the engine's n: above --max-n they are refused naming best_of (the
// Frontend's own check would name n).
absl::Status CheckBestOf(const Frontend& frontend, const BestOf& best_of) {
  const int32_t max_n = frontend.limits().max_n;
  if (!best_of.ranks() || best_of.candidates <= max_n) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("best_of: must be at most ", max_n,
                                                 " on this server, got ", best_of.candidates));
}

}  // namespace

HttpServer::HttpServer(Frontend* frontend, const ChatTemplate* chat_template,
                       HttpServerOptions options)
    : frontend_(frontend), chat_template_(chat_template), options_(std::move(options)) {}

HttpServer::~HttpServer() { Stop(); }

absl::Status HttpServer::Start() {
  if (options_.tool_call_parser == "auto") {
    tool_call_format_ = DetectToolCallFormat(
        chat_template_ != nullptr ? std::string_view(chat_template_->source()) : "");
  } else {
    ASSIGN_OR_RETURN(tool_call_format_, ToolCallFormatFromName(options_.tool_call_parser));
  }
  RETURN_IF_ERROR(options_.tls.Load().status());
  if (options_.tls.enabled()) {
    const TlsFiles& tls = options_.tls;
    auto server = std::make_unique<httplib::SSLServer>(
        tls.cert_file.c_str(), tls.key_file.c_str(),
        tls.client_ca_file.empty() ? nullptr : tls.client_ca_file.c_str());
    if (!server->is_valid()) {
      return absl::InvalidArgumentError(absl::StrCat("--tls-cert/--tls-key: OpenSSL refused ",
                                                     tls.cert_file, " with ", tls.key_file,
                                                     " (not a certificate and its key?)"));
    }
    server_ = std::move(server);
  } else {
    server_ = std::make_unique<httplib::Server>();
  }
  // httplib's default pool has as many threads as cores (at least 8), and a streaming request
  // holds one until it ends: that would cap concurrent streams far below the engine's batch.
  server_->new_task_queue = [threads = options_.threads] {
    return new httplib::ThreadPool(static_cast<size_t>(threads));
  };
  // Keep the listening socket to widen its accept queue below (httplib's is 5).
  int listen_fd = -1;
  server_->set_socket_options([&listen_fd](socket_t sock) {
    httplib::default_socket_options(sock);
    listen_fd = sock;
  });
  Route();
  port_ = options_.port == 0
              ? server_->bind_to_any_port(options_.host)
              : (server_->bind_to_port(options_.host, options_.port) ? options_.port : -1);
  if (port_ <= 0) {
    server_.reset();
    return absl::UnavailableError(
        absl::StrCat("cannot listen for HTTP on ", options_.host, ":", options_.port));
  }
  // Listening again on a listening socket only changes its backlog (Linux).
  if (listen_fd >= 0 && ::listen(listen_fd, kListenBacklog) != 0) {
    PAGODA_LOG(warn, "HTTP: cannot widen the accept queue: {}", std::strerror(errno));
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  // httplib's stop() is a no-op until its loop runs: a Stop() right after Start() must see it.
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (!server_->is_running() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(1));
  return absl::OkStatus();
}

void HttpServer::Stop() {
  if (server_ == nullptr) return;
  server_->stop();
  if (thread_.joinable()) thread_.join();
  server_.reset();
}

bool HttpServer::Ready() const {
  return options_.ready ? options_.ready() : frontend_->replicas().AnyReady();
}

// A client that sends its whole body before reading — urllib, requests and httpx all do — must
// see a refusal as a response, not as a connection reset mid-upload. So a request is refused
// before its body is read only for a wrong method (405) or a declared body beyond
// max_drained_bytes() (413; that much is not worth reading). Over max_request_bytes, httplib
// reads and discards the body itself and answers 413 (the error handler adds the JSON); a 401
// for a request with a body waits until the route has it (Screen with body_read = true).
size_t HttpServer::max_drained_bytes() const {
  return std::max(size_t{256} << 20, 4 * options_.max_request_bytes);
}

bool HttpServer::Screen(const httplib::Request& req, httplib::Response& res, bool body_read) const {
  for (const KnownRoute& route : kRoutes) {
    if (req.path == route.path && req.method != route.method) {
      res.set_header("Allow", route.method);
      ReplyError(res, 405,
                 absl::StrCat("method ", req.method, " is not allowed on ", req.path, "; use ",
                              route.method));
      return true;
    }
  }
  bool body_pending = false;
  if (!body_read) {
    const std::string length = req.get_header_value("Content-Length");
    const bool too_long =
        length.size() > 18 || std::strtoull(length.c_str(), nullptr, 10) > max_drained_bytes();
    if (too_long) {
      res.set_header("Connection", "close");
      ReplyError(res, 413,
                 absl::StrCat("request body over ", options_.max_request_bytes, " bytes"));
      return true;
    }
    // Only the POST routes screen again, so only their refusals may wait for the body.
    body_pending = req.method == "POST" &&
                   (std::strtoull(length.c_str(), nullptr, 10) > 0 ||
                    absl::StrContains(req.get_header_value("Transfer-Encoding"), "chunked"));
  }
  // Tokenizing costs the server work like the API does, so the keys guard it too.
  const bool guarded = absl::StartsWith(req.path, "/v1/") || req.path == "/tokenize" ||
                       req.path == "/detokenize" || options_.keys_guard_probes;
  if (guarded && options_.api_keys != nullptr &&
      !options_.api_keys->Authorizes(req.get_header_value("Authorization"))) {
    if (body_pending) return false;
    ReplyError(res, 401, "missing or wrong API key (Authorization: Bearer <key>)");
    return true;
  }
  return false;
}

void HttpServer::Route() {
  server_->set_payload_max_length(options_.max_request_bytes);
  if (options_.on_response) {
    server_->set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      std::string_view route = "other";  // unknown paths must not grow the label set
      for (const KnownRoute& known : kRoutes) {
        if (req.path == known.path) route = known.path;
      }
      options_.on_response(route, res.status);
    });
  }
  server_->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    return Screen(req, res, /*body_read=*/false) ? httplib::Server::HandlerResponse::Handled
                                                 : httplib::Server::HandlerResponse::Unhandled;
  });
  // httplib's own refusals (unknown route, payload too large) come without a body.
  server_->set_error_handler(httplib::Server::HandlerWithResponse(
      [this](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty() || res.is_chunked_content_provider_) {
          return httplib::Server::HandlerResponse::Unhandled;
        }
        std::string message = absl::StrCat("HTTP ", res.status);
        if (res.status == 404) message = absl::StrCat("no route ", req.method, " ", req.path);
        if (res.status == 413) {
          message = absl::StrCat("request body over ", options_.max_request_bytes, " bytes");
        }
        ReplyError(res, res.status, message);
        return httplib::Server::HandlerResponse::Handled;
      }));
  server_->set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr error) {
        std::string what = "unknown exception";
        try {
          std::rethrow_exception(error);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        PAGODA_LOG(error, "HTTP handler failed: {}", what);
        ReplyError(res, 500, absl::StrCat("internal error: ", what));
      });
  server_->Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    if (!Screen(req, res, /*body_read=*/true)) HandleCompletions(req, res);
  });
  server_->Post("/v1/chat/completions",
                [this](const httplib::Request& req, httplib::Response& res) {
                  if (!Screen(req, res, /*body_read=*/true)) HandleChatCompletions(req, res);
                });
  server_->Post("/tokenize", [this](const httplib::Request& req, httplib::Response& res) {
    if (!Screen(req, res, /*body_read=*/true)) HandleTokenize(req, res);
  });
  server_->Post("/detokenize", [this](const httplib::Request& req, httplib::Response& res) {
    if (!Screen(req, res, /*body_read=*/true)) HandleDetokenize(req, res);
  });
  server_->Get("/v1/models",
               [this](const httplib::Request&, httplib::Response& res) { HandleModels(res); });
  server_->Get("/health",
               [this](const httplib::Request&, httplib::Response& res) { HandleHealth(res); });
  server_->Get("/ready",
               [this](const httplib::Request&, httplib::Response& res) { HandleReady(res); });
  if (options_.metrics) {
    server_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(options_.metrics(), "text/plain; version=0.0.4");
    });
  }
}

void HttpServer::HandleCompletions(const httplib::Request& req, httplib::Response& res) {
  std::optional<CompletionRequest> request =
      ParseForModel(*frontend_, req, res, &ParseCompletionRequest);
  if (!request.has_value()) return;
  if (absl::Status status = CheckBestOf(*frontend_, request->best_of); !status.ok()) {
    return ReplyStatus(res, status);
  }
  std::shared_ptr<Job> job = NewJob(*frontend_, /*chat=*/false, request->prompts.front().params,
                                    request->best_of, request->include_usage, request->timeout_s);
  std::vector<std::string> prefixes;
  for (const GenerationInput& input : request->prompts) {
    if (!request->echo) break;
    prefixes.push_back(input.text.has_value() ? *input.text
                                              : frontend_->tokenizer().Decode(
                                                    input.token_ids, /*skip_special_tokens=*/true));
  }
  if (absl::Status status =
          StartJob(*frontend_, std::move(request->prompts), std::move(prefixes), *job);
      !status.ok()) {
    return ReplyStatus(res, status);
  }
  Respond(std::move(job), request->stream, res);
}

void HttpServer::HandleChatCompletions(const httplib::Request& req, httplib::Response& res) {
  std::optional<ChatCompletionRequest> request =
      ParseForModel(*frontend_, req, res, &ParseChatCompletionRequest);
  if (!request.has_value()) return;
  if (chat_template_ == nullptr) {
    return ReplyError(res, 400, "this model has no chat template", "messages");
  }
  const Tokenizer& tokenizer = frontend_->tokenizer();
  const ChatTools& tools = request->tools;
  if (tools.Enforced()) {
    if (!request->constraint_param.empty()) {
      return ReplyError(res, 400,
                        absl::StrCat("tool_choice: required or a named function cannot be "
                                     "combined with ",
                                     request->constraint_param),
                        "tool_choice");
    }
    absl::StatusOr<std::string> grammar = tools.Grammar(tool_call_format_);
    if (!grammar.ok()) return ReplyStatus(res, grammar.status());
    request->params.constraint_kind = SamplingParams::ConstraintKind::kGrammar;
    request->params.constraint = *std::move(grammar);
    request->constraint_param = "tool_choice";
  }
  // Llama 3's <|python_tag|> and Mistral's [TOOL_CALLS] are special tokens the parser must see.
  if (tools.Parsed() && tool_call_format_ != ToolCallFormat::kHermes) {
    request->params.skip_special_tokens = false;
  }
  // Tools are offered even with tool_choice none, as vLLM does; only the parsing is off then.
  absl::StatusOr<std::string> prompt =
      RenderChat(request->messages, tools.tools, /*add_generation_prompt=*/true,
                 request->chat_template_kwargs);
  if (!prompt.ok()) return ReplyStatus(res, prompt.status());
  // The template wrote BOS itself where the model wants it (vLLM does the same).
  GenerationInput input{.model = request->model,
                        .token_ids = tokenizer.Encode(*prompt, request->add_special_tokens),
                        .add_special_tokens = false,
                        .params = request->params,
                        .constraint_param = request->constraint_param};
  if (!request->max_tokens_given) {
    // vLLM's chat default: the rest of the context (validation refuses a prompt that fills it).
    const ServingLimits& limits = frontend_->limits();
    int64_t room = limits.max_model_len - static_cast<int64_t>(input.token_ids.size());
    if (limits.max_tokens > 0) room = std::min<int64_t>(room, limits.max_tokens);
    input.params.max_tokens = static_cast<int32_t>(std::max<int64_t>(room, 1));
  }
  if (absl::Status status = CheckBestOf(*frontend_, request->best_of); !status.ok()) {
    return ReplyStatus(res, status);
  }
  std::shared_ptr<Job> job = NewJob(*frontend_, /*chat=*/true, input.params, request->best_of,
                                    request->include_usage, request->timeout_s);
  if (tools.Parsed()) job->tool_format = tool_call_format_;
  std::vector<GenerationInput> inputs;
  inputs.push_back(std::move(input));
  if (absl::Status status = StartJob(*frontend_, std::move(inputs), {}, *job); !status.ok()) {
    return ReplyStatus(res, status);
  }
  Respond(std::move(job), request->stream, res);
}

absl::StatusOr<std::string> HttpServer::RenderChat(const json& messages, const json& tools,
                                                   bool add_generation_prompt,
                                                   const json& template_kwargs) const {
  if (chat_template_ == nullptr) {
    return absl::InvalidArgumentError("messages: this model has no chat template");
  }
  const Tokenizer& tokenizer = frontend_->tokenizer();
  auto token_text = [&](std::optional<int32_t> id) {
    std::optional<std::string> token = id.has_value() ? tokenizer.IdToToken(*id) : std::nullopt;
    return token.value_or("");
  };
  json extra = template_kwargs.is_object() ? template_kwargs : json::object();
  extra["bos_token"] = token_text(tokenizer.bos_token_id());
  extra["eos_token"] = token_text(tokenizer.eos_token_id());
  if (!tools.is_null()) extra["tools"] = tools;
  absl::StatusOr<std::string> prompt =
      chat_template_->Render(messages, add_generation_prompt, extra);
  if (!prompt.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("messages: ", std::string(prompt.status().message())));
  }
  return prompt;
}

void HttpServer::HandleTokenize(const httplib::Request& req, httplib::Response& res) const {
  std::optional<TokenizeRequest> request =
      ParseForModel(*frontend_, req, res, &ParseTokenizeRequest);
  if (!request.has_value()) return;
  std::string text;
  if (request->prompt.has_value()) {
    text = *std::move(request->prompt);
  } else {
    absl::StatusOr<std::string> rendered =
        RenderChat(request->messages, request->tools, request->add_generation_prompt,
                   request->chat_template_kwargs);
    if (!rendered.ok()) return ReplyStatus(res, rendered.status());
    text = *std::move(rendered);
  }
  const Tokenizer& tokenizer = frontend_->tokenizer();
  const std::vector<int32_t> tokens = tokenizer.Encode(text, request->add_special_tokens);
  json token_strs = nullptr;
  if (request->return_token_strs) {
    token_strs = json::array();
    for (int32_t id : tokens) token_strs.push_back(tokenizer.IdToToken(id).value_or(""));
  }
  res.set_content(DumpJson({{"count", tokens.size()},
                            {"max_model_len", frontend_->limits().max_model_len},
                            {"tokens", tokens},
                            {"token_strs", std::move(token_strs)}}),
                  kJson);
}

void HttpServer::HandleDetokenize(const httplib::Request& req, httplib::Response& res) const {
  std::optional<DetokenizeRequest> request =
      ParseForModel(*frontend_, req, res, &ParseDetokenizeRequest);
  if (!request.has_value()) return;
  const Tokenizer& tokenizer = frontend_->tokenizer();
  for (int32_t id : request->tokens) {
    if (id >= tokenizer.vocab_size() || !tokenizer.IdToToken(id).has_value()) {
      return ReplyError(res, 400, absl::StrCat("tokens: ", id, " is not in the vocabulary"),
                        "tokens");
    }
  }
  res.set_content(
      DumpJson({{"prompt", tokenizer.Decode(request->tokens, /*skip_special_tokens=*/false)}}),
      kJson);
}

void HttpServer::HandleModels(httplib::Response& res) const {
  const json model = {{"id", frontend_->model_name()},
                      {"object", "model"},
                      {"created", frontend_->created_unix_seconds()},
                      {"owned_by", "pagoda"},
                      {"root", frontend_->model_name()},
                      {"parent", nullptr},
                      {"max_model_len", frontend_->limits().max_model_len}};
  res.set_content(DumpJson({{"object", "list"}, {"data", json::array({model})}}), kJson);
}

void HttpServer::HandleHealth(httplib::Response& res) const {
  if (Ready()) {
    res.status = 200;
    return;
  }
  ReplyError(res, 503, "no replica is ready");
}

void HttpServer::HandleReady(httplib::Response& res) const {
  ReplicaSet& replicas = frontend_->replicas();
  json list = json::array();
  for (int32_t i = 0; i < replicas.num_replicas(); ++i) {
    const ReplicaStatus status = replicas.replica(i).status();
    list.push_back({{"index", i},
                    {"state", std::string(ReplicaStateName(status.state))},
                    {"num_running_requests", status.stats.num_running_requests},
                    {"num_waiting_requests", status.stats.num_waiting_requests},
                    {"last_error", status.last_error}});
  }
  const bool ready = Ready();
  res.status = ready ? 200 : 503;
  res.set_content(DumpJson({{"ready", ready}, {"replicas", std::move(list)}}), kJson);
}

}  // namespace pagoda
