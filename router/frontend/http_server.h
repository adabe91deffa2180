// HttpServer: the router's OpenAI-compatible HTTP API (cpp-httplib) over the shared Frontend —
// POST /v1/completions and /v1/chat/completions (JSON or Server-Sent Events), GET /v1/models,
// /health, /ready and /metrics — with vLLM's request fields, response shapes and error codes.
// The JSON itself is router/openai_protocol.h's; this file is routing, auth and streaming.
//
// A streamed request whose client goes away (a write fails) is cancelled, which frees its
// blocks. Handlers never throw: anything unexpected answers 500 in OpenAI's error shape.
//
//   HttpServer server(&frontend, chat_template.get(), {.host = "0.0.0.0", .port = 8000});
//   RETURN_IF_ERROR(server.Start());
//   LOG(INFO) << "HTTP on port " << server.port();
//   ...
//   server.Stop();
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "absl/status/status.h"
#include "common/tls_files.h"
#include "router/frontend/frontend.h"
#include "router/frontend/tool_call_parser.h"

namespace httplib {
class Server;
class Request;
class Response;
}  // namespace httplib

namespace pagoda {

class ApiKeys;       // router/frontend/api_keys.h
class ChatTemplate;  // common/chat_template.h

struct HttpServerOptions {
  std::string host = "0.0.0.0";
  int port = 8000;  // 0: the OS picks one (see HttpServer::port())
  /// Null or disabled: no auth; else /v1/* need "Authorization: Bearer <key>". Must outlive
  /// the server.
  const ApiKeys* api_keys = nullptr;
  /// With keys: /health, /ready and /metrics need one too (default: open for probes/scrapers).
  bool keys_guard_probes = false;
  size_t max_request_bytes = size_t{16} << 20;
  /// HTTPS when set (cert and key files); with a client CA, clients must present a certificate
  /// it signed (mutual TLS). Checked by TlsFiles::Load before the server starts.
  TlsFiles tls;
  /// Connections served at once: each holds a thread while its request runs (a stream until
  /// [DONE]); more wait in the accept queue.
  int threads = 512;
  /// The chat output's tool-call format: "auto" (detected from the chat template's text, see
  /// router/frontend/tool_call_parser.h), "hermes", "llama3_json" or "mistral". Start() refuses
  /// another name.
  std::string tool_call_parser = "auto";
  /// GET /metrics body (Prometheus text format); empty: /metrics is 404.
  std::function<std::string()> metrics;
  /// True while at least one replica is ready; empty: Frontend::replicas().AnyReady().
  std::function<bool()> ready;
  /// Called once per answered request with its route (a known path, else "other") and status.
  std::function<void(std::string_view route, int status)> on_response;
};

class HttpServer {
 public:
  /// `frontend` (and `chat_template`, null when the model has none) must outlive the server.
  HttpServer(Frontend* frontend, const ChatTemplate* chat_template, HttpServerOptions options);
  ~HttpServer();  // Stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  /// Binds and starts serving on an owned thread. Unavailable when the address cannot be bound.
  absl::Status Start();
  /// Stops accepting, waits for the serving thread. Idempotent.
  void Stop();

  /// The bound port (after Start()).
  int port() const { return port_; }
  /// The tool-call format chat outputs are parsed in (after Start()).
  ToolCallFormat tool_call_format() const { return tool_call_format_; }

 private:
  void Route();
  // 405, 401 and 413 from the headers; true when answered. Before the body is read
  // (`body_read` false) a 401 for a request with a body is deferred: the route screens again
  // once httplib has read it (see the .cc).
  bool Screen(const httplib::Request& req, httplib::Response& res, bool body_read) const;
  // Declared bodies up to this many bytes are read (and, over max_request_bytes, discarded by
  // httplib) before a refusal is sent; a larger declared body is refused unread.
  size_t max_drained_bytes() const;
  bool Ready() const;
  // The chat template applied to parsed messages, with BOS and EOS texts, `tools` (when not
  // null) and the request's chat_template_kwargs as the template's variables; InvalidArgument
  // naming "messages" when there is no template or it fails.
  absl::StatusOr<std::string> RenderChat(const nlohmann::json& messages,
                                         const nlohmann::json& tools, bool add_generation_prompt,
                                         const nlohmann::json& template_kwargs) const;

  void HandleCompletions(const httplib::Request& req, httplib::Response& res);
  void HandleChatCompletions(const httplib::Request& req, httplib::Response& res);
  void HandleTokenize(const httplib::Request& req, httplib::Response& res) const;
  void HandleDetokenize(const httplib::Request& req, httplib::Response& res) const;
  void HandleModels(httplib::Response& res) const;
  void HandleHealth(httplib::Response& res) const;
  void HandleReady(httplib::Response& res) const;

  Frontend* const frontend_;
  const ChatTemplate* const chat_template_;
  const HttpServerOptions options_;
  std::unique_ptr<httplib::Server> server_;
  int port_ = 0;
  ToolCallFormat tool_call_format_ = ToolCallFormat::kHermes;
  std::thread thread_;  // runs server_->listen_after_bind()
};

}  // namespace pagoda
