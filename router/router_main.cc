// pagoda-router: the gRPC frontend (pagoda.v1 Generation, grpc.health.v1, reflection) and the
// OpenAI-compatible HTTP API over R replicas of tensor-parallel pagoda-worker processes, each
// driven by its own EngineLoop, with a GlobalScheduler choosing the replica of every request and
// failover between replicas.
//
//   pagoda-router --model models/stories260K
//       --replica 127.0.0.1:50061,127.0.0.1:50062 --replica 127.0.0.1:50063,127.0.0.1:50064
//
// main() runs four steps: parse and check the flags, build the replica set (router/served_model.h,
// router/cluster_config.h), build the frontends, serve until SIGINT/SIGTERM.
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/arg_parser.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/sampling_params.h"
#include "common/status_macros.h"
#include "common/termination_signal.h"
#include "common/tls_files.h"
#include "engine/engine_args.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "proto/grpc_tls.h"
#include "router/cluster_config.h"
#include "router/frontend/api_keys.h"
#include "router/frontend/frontend.h"
#include "router/frontend/generation_service.h"
#include "router/frontend/health_reporter.h"
#include "router/frontend/http_server.h"
#include "router/frontend/tool_call_parser.h"
#include "router/replica_set.h"
#include "router/router_metrics.h"
#include "router/served_model.h"

namespace pagoda {
namespace {

constexpr int kMaxMessageBytes = 64 << 20;
constexpr char kHealthService[] = "pagoda.v1.Generation";

// Every flag, checked: the served model, the replicas (ClusterConfig) and the listeners.
struct RouterFlags {
  ServedModelOptions model;
  ClusterConfig cluster;
  std::string host = "0.0.0.0";
  int64_t grpc_port = 50051;
  std::string port_file;
  int64_t http_port = 8000;  // -1: no HTTP
  std::string http_port_file;
  std::string api_key;
  std::string api_key_file;
  bool probes_need_key = false;
  TlsFiles tls;  // the public listeners (gRPC and HTTP)
  int64_t max_request_bytes = int64_t{16} << 20;
  int64_t http_threads = 512;
  std::string tool_call_parser = "auto";
  int64_t max_n = 16;
  int64_t max_tokens = 0;
  double drain_timeout_s = 30;
  std::string log_level = "info";
};

// Step 1: parse and check the flags (kCancelled after --help).
absl::StatusOr<RouterFlags> ParseRouterFlags(int argc, char** argv) {
  RouterFlags f;
  std::vector<std::string> replicas;
  std::string routing_policy = "prefix_aware";
  std::string worker_model_dir;
  EngineArgs engine_args;  // the serving defaults
  double step_timeout_s = 120;
  double init_timeout_s = 600;
  int64_t health_interval_ms = 500;
  double failover_wait_s = 60;
  double admission_wait_s = 30;

  ArgParser parser("pagoda-router",
                   "Pagoda's router: the gRPC API over replicas of tensor-parallel workers.");
  parser.AddString("model", &f.model.model_dir,
                   "Model: a Hugging Face directory (config.json, tokenizer) or a .gguf file",
                   true);
  parser.AddString("model-name", &f.model.model_name,
                   "Name clients use (default: the directory name)");
  parser.AddStringList("replica", &replicas,
                       "A replica: its workers' host:port in rank order, comma-separated "
                       "(repeat the flag per replica)");
  parser.AddString("host", &f.host, "Address to listen on");
  parser.AddInt("grpc-port", &f.grpc_port, "gRPC port; 0 lets the OS choose (see --port-file)");
  parser.AddString("port-file", &f.port_file, "Write the gRPC port actually bound to this file");
  parser.AddInt("http-port", &f.http_port,
                "OpenAI-compatible HTTP port (also /health, /ready, /metrics); 0 lets the OS "
                "choose, -1 turns HTTP off");
  parser.AddString("http-port-file", &f.http_port_file,
                   "Write the HTTP port actually bound to this file");
  parser.AddString("api-key", &f.api_key,
                   "Require 'Authorization: Bearer KEY' on /v1/* (default: $PAGODA_API_KEY)");
  parser.AddString("api-key-file", &f.api_key_file,
                   "More API keys, one per line ('#' comments); re-read on SIGHUP");
  parser.AddBool("probes-need-key", &f.probes_need_key,
                 "/health, /ready and /metrics need an API key too (default: open)");
  parser.AddString("tls-cert", &f.tls.cert_file,
                   "PEM certificate (chain) of the public gRPC and HTTP listeners: serve TLS");
  parser.AddString("tls-key", &f.tls.key_file, "PEM private key of --tls-cert");
  parser.AddString("tls-client-ca", &f.tls.client_ca_file,
                   "PEM CA: clients must present a certificate it signed (mutual TLS)");
  TlsFiles worker_tls{.flag_prefix = "--worker-tls-"};  // the channels to the workers
  parser.AddString("worker-tls-ca", &worker_tls.ca_file,
                   "PEM CA that signed the workers' certificates: dial them with TLS");
  parser.AddString("worker-tls-cert", &worker_tls.cert_file,
                   "PEM client certificate (chain) presented to the workers (their "
                   "--tls-client-ca: mutual TLS)");
  parser.AddString("worker-tls-key", &worker_tls.key_file, "PEM private key of --worker-tls-cert");
  parser.AddString("worker-tls-server-name", &worker_tls.server_name,
                   "The name the workers' certificates hold, if not the host of their --replica "
                   "address");
  parser.AddInt("max-request-bytes", &f.max_request_bytes, "Largest HTTP request body");
  parser.AddInt("http-threads", &f.http_threads,
                "HTTP connections served at once (a streaming request holds one until it ends)");
  parser.AddString("chat-template", &f.model.chat_template_file,
                   "A Jinja chat template file, instead of tokenizer_config.json's");
  parser.AddString("tool-call-parser", &f.tool_call_parser,
                   "How chat outputs are parsed for tool calls: auto (from the chat template), "
                   "hermes, llama3_json or mistral");
  parser.AddString("routing-policy", &routing_policy, "round_robin, least_loaded or prefix_aware");
  parser.AddString("load-format", &f.cluster.load_format, "safetensors, or dummy (random weights)");
  parser.AddBool("enable-expert-parallel", &f.cluster.expert_parallel,
                 "The workers run with --enable-expert-parallel: a replica's size must divide "
                 "num_experts, not the experts' width");
  parser.AddString("worker-model-dir", &worker_model_dir,
                   "The model (directory or .gguf file) as the workers see it (default: --model)");
  engine_args.Register(parser);  // per replica; the KV cache per rank
  parser.AddInt("max-queued-requests", &f.cluster.max_queued_requests,
                "Waiting requests per replica before new ones get RESOURCE_EXHAUSTED");
  parser.AddInt("max-n", &f.max_n, "Most completions (n, beam width) per request");
  parser.AddInt("max-tokens-limit", &f.max_tokens, "Most tokens per request; 0: the context");
  parser.AddDouble("step-timeout-s", &step_timeout_s, "A step slower than this fails its replica");
  parser.AddDouble("init-timeout-s", &init_timeout_s, "Worker Init (model load) timeout");
  parser.AddInt("health-interval-ms", &health_interval_ms, "Worker health-check period");
  parser.AddDouble("failover-wait-s", &failover_wait_s,
                   "How long a request of a failed replica waits for another one");
  parser.AddDouble("admission-wait-s", &admission_wait_s,
                   "How long a new request waits for a ready replica while none is (all "
                   "restarting or loading) before UNAVAILABLE / 503; 0: answer at once");
  parser.AddDouble("drain-timeout-s", &f.drain_timeout_s,
                   "On SIGTERM/SIGINT: stop admitting, then let live requests finish for at most "
                   "this long before stopping (0: stop at once)");
  parser.AddString("log-level", &f.log_level, "trace, debug, info, warn, error");
  RETURN_IF_ERROR(parser.Parse(argc - 1, argv + 1));

  ASSIGN_OR_RETURN(const EngineSetup engine, engine_args.Build());
  ASSIGN_OR_RETURN(f.cluster.replicas, ParseReplicaFlags(replicas));
  if (f.grpc_port < 0 || f.grpc_port > 65535) {
    return absl::InvalidArgumentError("--grpc-port: must be in [0, 65535]");
  }
  if (f.http_port < -1 || f.http_port > 65535) {
    return absl::InvalidArgumentError("--http-port: must be in [-1, 65535]");
  }
  if (f.max_request_bytes < 1) {
    return absl::InvalidArgumentError("--max-request-bytes: must be >= 1");
  }
  RETURN_IF_ERROR(f.tls.Validate());
  // Read now: a missing file or a key that is not the certificate's stops the router before it
  // dials any worker.
  RETURN_IF_ERROR(worker_tls.ValidateClient());
  ASSIGN_OR_RETURN(f.cluster.worker_tls, worker_tls.Load());
  if (!(f.drain_timeout_s >= 0 && f.drain_timeout_s <= 3600)) {
    return absl::InvalidArgumentError("--drain-timeout-s: must be in [0, 3600]");
  }
  if (f.http_threads < 1 || f.http_threads > 65536) {
    return absl::InvalidArgumentError("--http-threads: must be in [1, 65536]");
  }
  if (f.tool_call_parser != "auto") {
    if (absl::Status known = ToolCallFormatFromName(f.tool_call_parser).status(); !known.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--tool-call-parser: ", known.message()));
    }
  }
  if (f.api_key.empty()) {
    if (const char* key = std::getenv("PAGODA_API_KEY"); key != nullptr) f.api_key = key;
  }
  if (f.max_n < 1 || f.max_n > SamplingParams::kMaxN) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max-n: must be in [1, ", SamplingParams::kMaxN, "]"));
  }
  if (f.max_tokens < 0 || f.cluster.max_queued_requests < 1 || health_interval_ms < 10 ||
      step_timeout_s <= 0 || init_timeout_s <= 0 || failover_wait_s < 0 || admission_wait_s < 0) {
    return absl::InvalidArgumentError(
        "--max-tokens-limit must be >= 0, --max-queued-requests >= 1, --health-interval-ms >= 10, "
        "the timeouts > 0, the waits >= 0");
  }
  if (f.cluster.load_format != "safetensors" && f.cluster.load_format != "dummy") {
    return absl::InvalidArgumentError("--load-format: must be safetensors or dummy");
  }
  ASSIGN_OR_RETURN(f.cluster.routing_policy, ParseRoutingPolicy(routing_policy));
  f.model.max_model_len = engine.engine.max_model_len;
  f.cluster.worker_model_dir = worker_model_dir.empty() ? f.model.model_dir : worker_model_dir;
  f.cluster.engine = engine.engine;
  f.cluster.cache = engine.cache;
  f.cluster.health_interval = absl::Milliseconds(health_interval_ms);
  f.cluster.init_timeout = absl::Seconds(init_timeout_s);
  f.cluster.step_timeout = absl::Seconds(step_timeout_s);
  f.cluster.failover_wait = absl::Seconds(failover_wait_s);
  f.cluster.admission_wait = absl::Seconds(admission_wait_s);
  return f;
}

// The listeners of step 3; the HTTP server is absent with --http-port -1.
struct Servers {
  std::unique_ptr<grpc::Server> grpc;
  int grpc_port = 0;
  std::optional<HttpServer> http;
};

// Step 3: the gRPC server (Generation, health, reflection) and the HTTP server, listening, their
// ports written to the port files. Unavailable when an address cannot be bound.
absl::Status StartServers(const RouterFlags& flags, const ServedModel& model, Frontend& frontend,
                          GenerationService& service, ReplicaSet& replicas, RouterMetrics& metrics,
                          const ApiKeys* api_keys, Servers& servers) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  ASSIGN_OR_RETURN(const TlsPem tls, flags.tls.Load());
  grpc::ServerBuilder builder;
  builder.AddListeningPort(absl::StrCat(flags.host, ":", flags.grpc_port), ServerCredentials(tls),
                           &servers.grpc_port);
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.RegisterService(&service);
  servers.grpc = builder.BuildAndStart();
  if (servers.grpc == nullptr || servers.grpc_port == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", flags.host, ":", flags.grpc_port));
  }
  if (flags.http_port >= 0) {
    servers.http.emplace(
        &frontend, model.chat_template.has_value() ? &*model.chat_template : nullptr,
        HttpServerOptions{
            .host = flags.host,
            .port = static_cast<int>(flags.http_port),
            .api_keys = api_keys,
            .keys_guard_probes = flags.probes_need_key,
            .max_request_bytes = static_cast<size_t>(flags.max_request_bytes),
            .tls = flags.tls,
            .threads = static_cast<int>(flags.http_threads),
            .tool_call_parser = flags.tool_call_parser,
            .metrics =
                [&replicas, &metrics] {
                  metrics.UpdateReplicas(replicas);
                  return metrics.Serialize();
                },
            .on_response = [&metrics](std::string_view route,
                                      int status) { metrics.CountHttpRequest(route, status); }});
    RETURN_IF_ERROR(servers.http->Start());
    if (!flags.http_port_file.empty()) {
      RETURN_IF_ERROR(
          WriteStringToFile(flags.http_port_file, absl::StrCat(servers.http->port(), "\n")));
    }
  }
  if (!flags.port_file.empty()) {
    RETURN_IF_ERROR(WriteStringToFile(flags.port_file, absl::StrCat(servers.grpc_port, "\n")));
  }
  return absl::OkStatus();
}

// Step 4: grpc.health.v1 says SERVING for the Generation service while a replica is ready.
// SIGHUP re-reads --api-key-file. On SIGINT/SIGTERM a graceful drain: stop admitting at once
// (readiness and health go false, new requests get 503 / UNAVAILABLE), let live requests finish for
// up to --drain-timeout-s (a second signal cuts it short), then stop the listeners, HTTP first.
void ServeUntilSignal(Servers& servers, ReplicaSet& replicas, ApiKeys& api_keys,
                      absl::Duration drain_timeout) {
  grpc::HealthCheckServiceInterface* health = servers.grpc->GetHealthCheckService();
  HealthReporter reporter([&replicas] { return replicas.AnyReady(); },
                          [health](bool serving) {
                            health->SetServingStatus(kHealthService, serving);
                            health->SetServingStatus("", serving);
                          });
  int signal = 0;
  while ((signal = WaitForTerminationOrReloadSignal()) == SIGHUP) {
    if (absl::Status reloaded = api_keys.Reload(); reloaded.ok()) {
      PAGODA_LOG(info, "SIGHUP: {} API key(s) in force", api_keys.num_keys());
    } else {
      PAGODA_LOG(error, "SIGHUP: keeping the API keys in force: {}",
                 std::string(reloaded.message()));
    }
  }
  replicas.StopAdmitting();
  const absl::Time deadline = absl::Now() + drain_timeout;
  PAGODA_LOG(info, "signal {}: draining {} live request(s) for at most {}", signal,
             replicas.num_live_requests(), absl::FormatDuration(drain_timeout));
  while (replicas.num_live_requests() > 0 && absl::Now() < deadline) {
    if (const int again = WaitForTerminationSignalFor(absl::Milliseconds(50)); again != 0) {
      PAGODA_LOG(warn, "signal {} while draining: stopping now", again);
      break;
    }
  }
  PAGODA_LOG(info, "shutting down with {} live request(s)", replicas.num_live_requests());
  if (servers.http.has_value()) servers.http->Stop();
  reporter.Stop();
  health->Shutdown();
  servers.grpc->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
}

int Fail(const absl::Status& status, int exit_code) {
  std::fprintf(stderr, "pagoda-router: %s\n", std::string(status.message()).c_str());
  return exit_code;
}

int Run(int argc, char** argv) {
  absl::StatusOr<RouterFlags> flags = ParseRouterFlags(argc, argv);
  if (absl::IsCancelled(flags.status())) return 0;  // --help
  if (!flags.ok()) return Fail(flags.status(), 2);
  if (absl::Status status = InitLogging("pagoda-router", flags->log_level); !status.ok()) {
    return Fail(status, 2);
  }

  // Step 2: the served model and the replica set (each replica connects to its workers and
  // initializes them on its own thread).
  absl::StatusOr<ServedModel> model = ServedModel::Load(flags->model);
  if (!model.ok()) return Fail(model.status(), 2);
  absl::StatusOr<std::unique_ptr<ApiKeys>> api_keys =
      ApiKeys::Create(flags->api_key, flags->api_key_file);
  if (!api_keys.ok()) return Fail(api_keys.status(), 2);
  BlockTerminationSignals();
  BlockReloadSignal();
  RouterMetrics metrics(model->name);  // outlives the replicas, which report to it
  absl::StatusOr<ReplicaSetOptions> options =
      MakeReplicaSetOptions(flags->cluster, *model, &metrics);
  if (!options.ok()) return Fail(options.status(), 2);
  ReplicaSet replicas(std::move(*options));

  // Step 3: the frontends.
  Frontend frontend(&replicas, model->tokenizer.get(),
                    {.model_name = model->name,
                     .limits = {.max_model_len = model->max_model_len,
                                .vocab_size = model->config.vocab_size,
                                .max_n = static_cast<int32_t>(flags->max_n),
                                .max_tokens = static_cast<int32_t>(flags->max_tokens)},
                     .stop_token_ids = model->eos_token_ids});
  const std::string routing_policy(RoutingPolicyName(flags->cluster.routing_policy));
  GenerationService service(&frontend, PAGODA_VERSION, routing_policy,
                            flags->cluster.max_queued_requests, api_keys->get());
  Servers servers;
  if (absl::Status status = StartServers(*flags, *model, frontend, service, replicas, metrics,
                                         api_keys->get(), servers);
      !status.ok()) {
    PAGODA_LOG(error, "{}", std::string(status.message()));
    return 1;
  }
  PAGODA_LOG(info, "serving '{}' on {}:{} (gRPC){} with {} replica(s), routing {}", model->name,
             flags->host, servers.grpc_port,
             servers.http.has_value() ? absl::StrCat(", ", servers.http->port(), " (HTTP)")
                                      : std::string(),
             flags->cluster.replicas.size(), routing_policy);

  // Step 4.
  ServeUntilSignal(servers, replicas, **api_keys, absl::Seconds(flags->drain_timeout_s));
  return 0;
}

}  // namespace
}  // namespace pagoda

int main(int argc, char** argv) { return pagoda::Run(argc, argv); }
