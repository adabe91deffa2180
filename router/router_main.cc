// pagoda-router: the gRPC frontend (pagoda.v1 Generation, grpc.health.v1, reflection) over R
// replicas of tensor-parallel pagoda-worker processes, each driven by its own EngineLoop, with a
// GlobalScheduler choosing the replica of every request and failover between replicas.
//
//   pagoda-router --model models/stories260K
//       --replica 127.0.0.1:50061,127.0.0.1:50062 --replica 127.0.0.1:50063,127.0.0.1:50064
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/arg_parser.h"
#include "common/chat_template/chat_template.h"
#include "common/logging.h"
#include "common/model_config.h"
#include "common/status_macros.h"
#include "common/termination_signal.h"
#include "common/tokenizer/tokenizer.h"
#include "engine/engine_args.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "router/frontend/frontend.h"
#include "router/frontend/generation_service.h"
#include "router/frontend/http_server.h"
#include "router/replica_set.h"
#include "router/router_metrics.h"

namespace pagoda {
namespace {

constexpr int kMaxMessageBytes = 64 << 20;
constexpr char kHealthService[] = "pagoda.v1.Generation";

struct Flags {
  std::string model;
  std::string model_name;
  std::vector<std::string> replicas;
  std::string host = "0.0.0.0";
  int64_t grpc_port = 50051;
  std::string port_file;
  int64_t http_port = 8000;
  std::string http_port_file;
  std::string api_key;
  std::string chat_template;
  int64_t max_request_bytes = int64_t{16} << 20;
  int64_t http_threads = 512;
  std::string routing_policy = "prefix_aware";
  std::string load_format = "safetensors";
  std::string worker_model_dir;
  EngineArgs engine_args;  // the serving defaults
  EngineSetup engine;      // what they build
  int64_t max_queued_requests = 1024;
  int64_t max_n = 16;
  int64_t max_tokens = 0;
  double step_timeout_s = 120;
  double init_timeout_s = 600;
  int64_t health_interval_ms = 500;
  double failover_wait_s = 60;
  std::string log_level = "info";
};

absl::Status ParseFlags(int argc, char** argv, Flags& f) {
  ArgParser parser("pagoda-router",
                   "Pagoda's router: the gRPC API over replicas of tensor-parallel workers.");
  parser.AddString("model", &f.model, "Model directory (config.json, tokenizer)", true);
  parser.AddString("model-name", &f.model_name, "Name clients use (default: the directory name)");
  parser.AddStringList("replica", &f.replicas,
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
  parser.AddInt("max-request-bytes", &f.max_request_bytes, "Largest HTTP request body");
  parser.AddInt("http-threads", &f.http_threads,
                "HTTP connections served at once (a streaming request holds one until it ends)");
  parser.AddString("chat-template", &f.chat_template,
                   "A Jinja chat template file, instead of tokenizer_config.json's");
  parser.AddString("routing-policy", &f.routing_policy,
                   "round_robin, least_loaded or prefix_aware");
  parser.AddString("load-format", &f.load_format, "safetensors, or dummy (random weights)");
  parser.AddString("worker-model-dir", &f.worker_model_dir,
                   "The model directory as the workers see it (default: --model)");
  f.engine_args.Register(parser);  // per replica; the KV cache per rank
  parser.AddInt("max-queued-requests", &f.max_queued_requests,
                "Waiting requests per replica before new ones get RESOURCE_EXHAUSTED");
  parser.AddInt("max-n", &f.max_n, "Most completions (n, beam width) per request");
  parser.AddInt("max-tokens-limit", &f.max_tokens, "Most tokens per request; 0: the context");
  parser.AddDouble("step-timeout-s", &f.step_timeout_s,
                   "A step slower than this fails its replica");
  parser.AddDouble("init-timeout-s", &f.init_timeout_s, "Worker Init (model load) timeout");
  parser.AddInt("health-interval-ms", &f.health_interval_ms, "Worker health-check period");
  parser.AddDouble("failover-wait-s", &f.failover_wait_s,
                   "How long a request of a failed replica waits for another one");
  parser.AddString("log-level", &f.log_level, "trace, debug, info, warn, error");
  RETURN_IF_ERROR(parser.Parse(argc - 1, argv + 1));
  ASSIGN_OR_RETURN(f.engine, f.engine_args.Build());
  if (f.replicas.empty()) return absl::InvalidArgumentError("--replica: at least one is needed");
  if (f.grpc_port < 0 || f.grpc_port > 65535) {
    return absl::InvalidArgumentError("--grpc-port: must be in [0, 65535]");
  }
  if (f.http_port < -1 || f.http_port > 65535) {
    return absl::InvalidArgumentError("--http-port: must be in [-1, 65535]");
  }
  if (f.max_request_bytes < 1) {
    return absl::InvalidArgumentError("--max-request-bytes: must be >= 1");
  }
  if (f.http_threads < 1 || f.http_threads > 65536) {
    return absl::InvalidArgumentError("--http-threads: must be in [1, 65536]");
  }
  if (f.api_key.empty()) {
    if (const char* key = std::getenv("PAGODA_API_KEY"); key != nullptr) f.api_key = key;
  }
  if (f.max_n < 1 || f.max_n > SamplingParams::kMaxN) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max-n: must be in [1, ", SamplingParams::kMaxN, "]"));
  }
  if (f.max_tokens < 0 || f.max_queued_requests < 1 || f.health_interval_ms < 10 ||
      f.step_timeout_s <= 0 || f.init_timeout_s <= 0 || f.failover_wait_s < 0) {
    return absl::InvalidArgumentError(
        "--max-tokens-limit must be >= 0, --max-queued-requests >= 1, --health-interval-ms >= 10, "
        "the timeouts > 0");
  }
  if (f.load_format != "safetensors" && f.load_format != "dummy") {
    return absl::InvalidArgumentError("--load-format: must be safetensors or dummy");
  }
  return absl::OkStatus();
}

// Writes `port` to `path` atomically (a reader never sees a partial file).
absl::Status WritePortFile(const std::string& path, int port) {
  const std::string tmp = path + ".tmp";
  std::ofstream(tmp) << port << "\n";
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot write the port file ", path));
  }
  return absl::OkStatus();
}

// --chat-template's file, else the model's own template; none (nullopt) is fine: then
// /v1/chat/completions answers 400.
absl::StatusOr<std::optional<ChatTemplate>> LoadChatTemplate(const std::string& file,
                                                             const std::string& model_dir) {
  if (!file.empty()) {
    std::ifstream in(file, std::ios::binary);
    if (!in) return absl::InvalidArgumentError(absl::StrCat("--chat-template: cannot read ", file));
    std::string source((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    absl::StatusOr<ChatTemplate> parsed = ChatTemplate::Parse(std::move(source));
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--chat-template: ", file, ": ", std::string(parsed.status().message())));
    }
    return std::optional<ChatTemplate>(std::move(*parsed));
  }
  absl::StatusOr<ChatTemplate> loaded = ChatTemplate::FromModelDirectory(model_dir);
  if (loaded.ok()) return std::optional<ChatTemplate>(std::move(*loaded));
  if (absl::IsNotFound(loaded.status())) return std::optional<ChatTemplate>();
  return loaded.status();
}

absl::StatusOr<std::vector<std::vector<std::string>>> ParseReplicas(
    const std::vector<std::string>& flags) {
  std::vector<std::vector<std::string>> replicas;
  for (const std::string& flag : flags) {
    std::vector<std::string> workers = absl::StrSplit(flag, ',', absl::SkipWhitespace());
    if (workers.empty()) return absl::InvalidArgumentError("--replica: names no worker");
    for (const std::string& worker : workers) {
      const size_t colon = worker.rfind(':');
      if (colon == std::string::npos || colon == 0 || colon + 1 == worker.size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--replica: '", worker, "' is not host:port"));
      }
    }
    replicas.push_back(std::move(workers));
  }
  return replicas;
}

int Run(int argc, char** argv) {
  Flags flags;
  if (absl::Status status = ParseFlags(argc, argv, flags); !status.ok()) {
    if (absl::IsCancelled(status)) return 0;
    std::fprintf(stderr, "pagoda-router: %s\n", std::string(status.message()).c_str());
    return 2;
  }
  auto fail = [](const absl::Status& status) {
    std::fprintf(stderr, "pagoda-router: %s\n", std::string(status.message()).c_str());
    return 2;
  };
  if (absl::Status status = InitLogging("pagoda-router", flags.log_level); !status.ok()) {
    return fail(status);
  }
  absl::StatusOr<std::vector<std::vector<std::string>>> workers = ParseReplicas(flags.replicas);
  if (!workers.ok()) return fail(workers.status());
  absl::StatusOr<ModelConfig> config = ModelConfig::FromDirectory(flags.model);
  if (!config.ok()) return fail(config.status());
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = Tokenizer::FromDirectory(flags.model);
  if (!tokenizer.ok()) return fail(tokenizer.status());
  // The chat template is optional: without one, /v1/chat/completions answers 400.
  absl::StatusOr<std::optional<ChatTemplate>> chat_template =
      LoadChatTemplate(flags.chat_template, flags.model);
  if (!chat_template.ok()) return fail(chat_template.status());
  absl::StatusOr<RoutingPolicy> policy = ParseRoutingPolicy(flags.routing_policy);
  if (!policy.ok()) return fail(policy.status());
  const std::string model_name =
      flags.model_name.empty()
          ? std::filesystem::path(flags.model).lexically_normal().filename().string()
          : flags.model_name;
  const int64_t max_model_len =
      flags.engine.engine.max_model_len > 0
          ? std::min(flags.engine.engine.max_model_len, config->max_position_embeddings)
          : config->max_position_embeddings;
  const CacheConfig& cache = flags.engine.cache;
  const std::vector<int32_t> eos = EosTokenIds(config->eos_token_ids, **tokenizer);

  internal::InitRequest init;
  init.set_model_dir(flags.worker_model_dir.empty() ? flags.model : flags.worker_model_dir);
  init.set_load_format(flags.load_format);
  init.set_communicator("auto");
  init.set_block_size(static_cast<int32_t>(cache.block_size));
  init.set_num_device_blocks(cache.num_gpu_blocks_override);
  init.set_kv_cache_memory_bytes(cache.kv_cache_memory_bytes);
  init.set_swap_space_bytes(cache.swap_space_bytes);
  init.set_max_model_len(max_model_len);
  init.mutable_extra_eos_token_ids()->Add(eos.begin(), eos.end());
  init.set_timeout_ms(30'000);

  EngineConfig engine = flags.engine.engine;  // validated with the flags
  engine.max_model_len = max_model_len;
  engine.max_waiting_requests = flags.max_queued_requests;
  ReplicaSetOptions options{.scheduler = {.policy = *policy, .block_size = cache.block_size},
                            .failover_wait = absl::Seconds(flags.failover_wait_s)};
  if (absl::Status status = options.scheduler.Validate(); !status.ok()) return fail(status);
  for (size_t i = 0; i < workers->size(); ++i) {
    ReplicaOptions replica{.index = static_cast<int32_t>(i),
                           .engine = engine,
                           .tokenizer = tokenizer->get(),
                           .eos_token_ids = eos,
                           .health_interval = absl::Milliseconds(flags.health_interval_ms)};
    replica.executor.worker_addresses = (*workers)[i];
    replica.executor.init = init;
    // The workers label their metrics with it: the same value as the router's replica label.
    replica.executor.init.set_replica(absl::StrCat(i));
    replica.executor.init_timeout = absl::Seconds(flags.init_timeout_s);
    replica.executor.step_timeout = absl::Seconds(flags.step_timeout_s);
    options.replicas.push_back(std::move(replica));
  }

  BlockTerminationSignals();
  RouterMetrics metrics(model_name);  // outlives the replicas, which report to it
  options.metrics = &metrics;
  ReplicaSet replicas(std::move(options));
  Frontend frontend(&replicas, tokenizer->get(),
                    {.model_name = model_name,
                     .limits = {.max_model_len = max_model_len,
                                .vocab_size = config->vocab_size,
                                .max_n = static_cast<int32_t>(flags.max_n),
                                .max_tokens = static_cast<int32_t>(flags.max_tokens)}});
  GenerationService service(&frontend, PAGODA_VERSION, flags.routing_policy,
                            flags.max_queued_requests);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int bound_port = 0;
  builder.AddListeningPort(absl::StrCat(flags.host, ":", flags.grpc_port),
                           grpc::InsecureServerCredentials(), &bound_port);
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || bound_port == 0) {
    PAGODA_LOG(error, "cannot listen on {}:{}", flags.host, flags.grpc_port);
    return 1;
  }
  std::optional<HttpServer> http;
  if (flags.http_port >= 0) {
    http.emplace(&frontend, chat_template->has_value() ? &**chat_template : nullptr,
                 HttpServerOptions{
                     .host = flags.host,
                     .port = static_cast<int>(flags.http_port),
                     .api_key = flags.api_key,
                     .max_request_bytes = static_cast<size_t>(flags.max_request_bytes),
                     .threads = static_cast<int>(flags.http_threads),
                     .metrics =
                         [&] {
                           metrics.UpdateReplicas(replicas);
                           return metrics.Serialize();
                         },
                     .on_response = [&](std::string_view route,
                                        int status) { metrics.CountHttpRequest(route, status); }});
    if (absl::Status status = http->Start(); !status.ok()) {
      PAGODA_LOG(error, "{}", std::string(status.message()));
      return 1;
    }
    if (!flags.http_port_file.empty()) {
      if (absl::Status status = WritePortFile(flags.http_port_file, http->port()); !status.ok()) {
        PAGODA_LOG(error, "{}", std::string(status.message()));
        return 1;
      }
    }
  }
  if (!flags.port_file.empty()) {
    if (absl::Status status = WritePortFile(flags.port_file, bound_port); !status.ok()) {
      PAGODA_LOG(error, "{}", std::string(status.message()));
      return 1;
    }
  }
  PAGODA_LOG(info, "serving '{}' on {}:{} (gRPC){} with {} replica(s), routing {}", model_name,
             flags.host, bound_port,
             http.has_value() ? absl::StrCat(", ", http->port(), " (HTTP)") : std::string(),
             workers->size(), flags.routing_policy);

  // grpc.health.v1 reports SERVING for the Generation service while a replica is ready.
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  std::atomic<bool> stop_health = false;
  std::thread health_updater([&] {
    bool last = false;
    health->SetServingStatus(kHealthService, false);
    health->SetServingStatus("", false);
    while (!stop_health.load()) {
      const bool ready = replicas.AnyReady();
      if (ready != last) {
        health->SetServingStatus(kHealthService, ready);
        health->SetServingStatus("", ready);
        last = ready;
      }
      absl::SleepFor(absl::Milliseconds(100));
    }
  });

  const int signal = WaitForTerminationSignal();
  PAGODA_LOG(info, "signal {}: shutting down", signal);
  if (http.has_value()) http->Stop();
  stop_health = true;
  health_updater.join();
  health->Shutdown();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  return 0;
}

}  // namespace
}  // namespace pagoda

int main(int argc, char** argv) { return pagoda::Run(argc, argv); }
