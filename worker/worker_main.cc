// pagoda-worker: one tensor-parallel rank of a replica, serving the pagoda.internal Worker
// service. It starts empty; the router's Init names the model, the rank and the KV budget.
//
//   pagoda-worker --port 50061 [--host 0.0.0.0] [--comm-host 10.0.0.7] [--port-file FILE]
//                 [--metrics-port 9400] [--metrics-port-file FILE]
//                 [--dtype auto|float32|bfloat16|float16] [--kv-cache-dtype auto|float32|bfloat16]
//                 [--device auto|cpu|cuda] [--cuda-device N] [--gpu-memory-utilization F]
//                 [--enforce-eager]
//                 [--tls-cert F --tls-key F --tls-ca F [--tls-client-ca F]]
//
// With --tls-cert the gRPC port serves TLS, and with --tls-client-ca mutual TLS: the router
// (--worker-tls-*) and the other ranks (dialing rank 0's bootstrap store) must present a
// certificate that CA signed. The metrics port stays plain HTTP.
//
// With --metrics-port (or --metrics-port-file alone: an OS-chosen port written there), GET
// /metrics on that port (same --host) serves WorkerMetrics in the Prometheus text format, and
// GET /health answers 200 while the process serves, with the Worker service's state as JSON
// (what container liveness/readiness probes ask: a worker that is UNINITIALIZED or FAILED is
// still healthy, the router re-initializes it; DRAINING after SIGTERM).
//
// SIGTERM drains (worker/worker_drain.h; SIGINT exits at once): Health reports DRAINING at once, so
// the router moves the replica's requests to the others while this rank still applies the steps it
// is sent; the process exits once no step came for 2 s, or after --drain-timeout-s (30), or on a
// second signal.
#include <signal.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/arg_parser.h"
#include "common/logging.h"
#include "common/model_args.h"
#include "common/openmp_wait_policy.h"
#include "common/termination_signal.h"
#include "common/tls_files.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "httplib.h"
#include "kernels/cuda/device_memory.h"
#include "nlohmann/json.hpp"
#include "proto/grpc_tls.h"
#include "worker/device_selection.h"
#include "worker/worker_drain.h"
#include "worker/worker_metrics.h"
#include "worker/worker_runtime.h"
#include "worker/worker_service.h"

namespace pagoda {
namespace {

constexpr int kMaxMessageBytes = 256 << 20;

// Writes `port` to `path` whole, then renames: a reader never sees a partial port.
bool WritePortFile(const std::string& path, int port) {
  const std::string tmp = path + ".tmp";
  std::ofstream(tmp) << port << "\n";
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

int Run(int argc, char** argv) {
  ArgParser parser("pagoda-worker",
                   "One tensor-parallel rank of a Pagoda replica (pagoda.internal.Worker over "
                   "gRPC). The router initializes it with the model, rank and KV budget.");
  std::string host = "0.0.0.0";
  int64_t port = 0;
  std::string port_file;
  std::string comm_host = "127.0.0.1";
  std::string model_dir;
  std::string draft_model_dir;
  std::string log_level = "info";
  int64_t metrics_port = 0;
  std::string metrics_port_file;
  double drain_timeout_s = 30;
  int64_t cuda_device = 0;
  parser.AddString("host", &host, "Address to listen on");
  parser.AddInt("port", &port, "gRPC port; 0 lets the OS choose (see --port-file)");
  parser.AddString("port-file", &port_file, "Write the port actually bound to this file");
  parser.AddString("comm-host", &comm_host,
                   "Address the other ranks reach this rank's communicator (Gloo) at");
  parser.AddString("model-dir", &model_dir,
                   "Load the model from this directory (or .gguf file) instead of the one the "
                   "router names");
  parser.AddString("draft-model-dir", &draft_model_dir,
                   "Load speculative decoding's draft model from this directory (or .gguf file) "
                   "instead of the one the router names (used only when it names one)");
  ModelArgs model_args;
  model_args.Register(parser);
  parser.AddInt("cuda-device", &cuda_device,
                "With --device cuda: the ordinal of the GPU this rank uses (one GPU per rank; "
                "among those CUDA_VISIBLE_DEVICES shows)");
  TlsFiles tls;
  parser.AddString("tls-cert", &tls.cert_file,
                   "PEM certificate (chain) of this worker's gRPC port: serve TLS (also presented "
                   "to rank 0 when this rank dials it)");
  parser.AddString("tls-key", &tls.key_file, "PEM private key of --tls-cert");
  parser.AddString("tls-client-ca", &tls.client_ca_file,
                   "PEM CA: the router and the other ranks must present a certificate it signed "
                   "(mutual TLS)");
  parser.AddString("tls-ca", &tls.ca_file,
                   "PEM CA that signed rank 0's certificate (needed with --tls-cert: this rank "
                   "dials rank 0 with TLS)");
  parser.AddString("tls-server-name", &tls.server_name,
                   "The name rank 0's certificate holds, if not the host of its address");
  parser.AddString("log-level", &log_level, "trace, debug, info, warn, error");
  parser.AddInt("metrics-port", &metrics_port,
                "Serve Prometheus metrics at GET /metrics and liveness at GET /health on this "
                "port; 0: off (unless --metrics-port-file is set: then the OS chooses)");
  parser.AddString("metrics-port-file", &metrics_port_file,
                   "Serve metrics and write the metrics port actually bound to this file");
  parser.AddDouble("drain-timeout-s", &drain_timeout_s,
                   "On SIGTERM: report DRAINING so the router moves this replica's requests, keep "
                   "applying its steps, and exit once none came for 2 s or after this many "
                   "seconds (a second signal: at once)");
  if (absl::Status status = parser.Parse(argc - 1, argv + 1); !status.ok()) {
    if (absl::IsCancelled(status)) return 0;
    std::fprintf(stderr, "pagoda-worker: %s\n", std::string(status.message()).c_str());
    return 2;
  }
  const absl::StatusOr<ModelMemoryConfig> memory = model_args.Build();
  if (!memory.ok()) {
    std::fprintf(stderr, "pagoda-worker: %s\n", std::string(memory.status().message()).c_str());
    return 2;
  }
  const absl::StatusOr<Device> device = SelectDevice(memory->device);
  if (!device.ok()) {
    std::fprintf(stderr, "pagoda-worker: %s\n", std::string(device.status().message()).c_str());
    return 2;
  }
  if (*device == Device::kCuda) {
    if (cuda_device < 0 || cuda_device >= kernels::cuda::DeviceCount()) {
      std::fprintf(stderr, "pagoda-worker: --cuda-device must be in [0, %d), got %lld\n",
                   kernels::cuda::DeviceCount(), static_cast<long long>(cuda_device));
      return 2;
    }
  }
  if (port < 0 || port > 65535) {
    std::fprintf(stderr, "pagoda-worker: --port must be in [0, 65535], got %lld\n",
                 static_cast<long long>(port));
    return 2;
  }
  if (metrics_port < 0 || metrics_port > 65535) {
    std::fprintf(stderr, "pagoda-worker: --metrics-port must be in [0, 65535], got %lld\n",
                 static_cast<long long>(metrics_port));
    return 2;
  }
  if (!(drain_timeout_s >= 0) || drain_timeout_s > 3600) {
    std::fprintf(stderr, "pagoda-worker: --drain-timeout-s must be in [0, 3600], got %g\n",
                 drain_timeout_s);
    return 2;
  }
  // The ranks of a replica share one configuration: rank 0 serves TLS exactly when this rank
  // does, so this rank dials it with TLS exactly then.
  const absl::Status tls_valid = tls.ValidatePeer();
  const absl::StatusOr<TlsPem> tls_pem =
      tls_valid.ok() ? tls.Load() : absl::StatusOr<TlsPem>(tls_valid);
  if (!tls_pem.ok()) {
    std::fprintf(stderr, "pagoda-worker: %s\n", std::string(tls_pem.status().message()).c_str());
    return 2;
  }
  if (absl::Status status = InitLogging("pagoda-worker", log_level); !status.ok()) {
    std::fprintf(stderr, "pagoda-worker: %s\n", std::string(status.message()).c_str());
    return 2;
  }
  BlockTerminationSignals();

  PAGODA_LOG(info, "device: {}{}", DeviceName(*device),
             *device == Device::kCuda ? absl::StrCat(" ", cuda_device) : "");
  WorkerMetrics metrics;
  WorkerRuntime runtime({.comm_host = comm_host,
                         .model_dir = model_dir,
                         .draft_model_dir = draft_model_dir,
                         .device = *device,
                         .cuda_device = static_cast<int32_t>(cuda_device),
                         .gpu_memory_utilization = memory->gpu_memory_utilization,
                         .enforce_eager = memory->enforce_eager,
                         .weight_dtype = memory->weight_dtype,
                         .kv_cache_dtype = memory->kv_cache_dtype,
                         .expert_parallel = memory->expert_parallel,
                         .metrics = &metrics,
                         .connect_store = GrpcRendezvousConnector(*tls_pem)});
  WorkerService service(&runtime, [] { RequestTermination(); });
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int bound_port = 0;
  builder.AddListeningPort(absl::StrCat(host, ":", port), ServerCredentials(*tls_pem), &bound_port);
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.SetMaxSendMessageSize(kMaxMessageBytes);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || bound_port == 0) {
    PAGODA_LOG(error, "cannot listen on {}:{}", host, port);
    return 1;
  }
  if (!port_file.empty() && !WritePortFile(port_file, bound_port)) {
    PAGODA_LOG(error, "cannot write the port file {}", port_file);
    return 1;
  }
  PAGODA_LOG(info, "listening on {}:{}{}", host, bound_port,
             !tls.enabled()               ? ""
             : tls_pem->client_ca.empty() ? " (TLS)"
                                          : " (mutual TLS)");

  httplib::Server metrics_server;
  std::thread metrics_thread;
  if (metrics_port > 0 || !metrics_port_file.empty()) {
    metrics_server.Get("/metrics", [&metrics](const httplib::Request&, httplib::Response& res) {
      res.set_content(metrics.Serialize(), "text/plain; version=0.0.4; charset=utf-8");
    });
    // 200 whenever the process answers: UNINITIALIZED and FAILED are states the router's next
    // Init repairs, not reasons to restart the container.
    metrics_server.Get("/health", [&runtime](const httplib::Request&, httplib::Response& res) {
      const WorkerHealth health = runtime.Health();
      const nlohmann::json body = {
          {"state",
           health.draining ? std::string("DRAINING") : std::string(WorkerStateName(health.state))},
          {"generation", health.generation},
          {"tp_rank", health.tp_rank},
          {"tp_size", health.tp_size}};
      res.set_content(body.dump(), "application/json");
    });
    if (metrics_port == 0) {
      metrics_port = metrics_server.bind_to_any_port(host);
    } else if (!metrics_server.bind_to_port(host, static_cast<int>(metrics_port))) {
      metrics_port = -1;
    }
    if (metrics_port <= 0) {
      PAGODA_LOG(error, "cannot listen for metrics on {}", host);
      return 1;
    }
    if (!metrics_port_file.empty() &&
        !WritePortFile(metrics_port_file, static_cast<int>(metrics_port))) {
      PAGODA_LOG(error, "cannot write the metrics port file {}", metrics_port_file);
      return 1;
    }
    metrics_thread = std::thread([&metrics_server] { metrics_server.listen_after_bind(); });
    PAGODA_LOG(info, "metrics on http://{}:{}/metrics", host, metrics_port);
  }

  const int signal = WaitForTerminationSignal();
  if (signal == SIGTERM) {
    PAGODA_LOG(info, "SIGTERM: draining (at most {} s)", drain_timeout_s);
    const DrainEnd drained = DrainWorker(
        runtime, {.timeout = absl::Seconds(drain_timeout_s)}, *Clock::Real(),
        [](absl::Duration timeout) { return WaitForTerminationSignalFor(timeout) != 0; });
    PAGODA_LOG(info, "drained ({}): shutting down", DrainEndName(drained));
  } else {
    PAGODA_LOG(info, "signal {}: shutting down", signal);
  }
  if (metrics_thread.joinable()) {
    metrics_server.stop();
    metrics_thread.join();
  }
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  return 0;
}

}  // namespace
}  // namespace pagoda

int main(int argc, char** argv) {
  pagoda::ExecWithShortOpenMpSpinUnlessSet(argv);
  return pagoda::Run(argc, argv);
}
