#include "tools/serve_command.h"

#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/arg_parser.h"
#include "common/logging.h"
#include "common/model_args.h"
#include "common/model_config.h"
#include "common/model_source.h"
#include "common/status_macros.h"
#include "common/subprocess.h"
#include "common/tls_files.h"
#include "engine/engine_args.h"
#include "kernels/cuda/device_memory.h"
#include "nlohmann/json.hpp"
#include "worker/device_selection.h"
#include "worker/in_process_executor.h"

namespace pagoda {
namespace {

constexpr absl::Duration kPortFileTimeout = absl::Seconds(60);
constexpr absl::Duration kRestartDelay = absl::Milliseconds(500);

struct ServeFlags {
  std::string model;
  int64_t replicas = 1;
  int64_t tp = 1;
  std::string host = "127.0.0.1";
  int64_t grpc_port = 50051;
  int64_t http_port = 8000;
  std::string port_file;
  std::string state_file;
  std::string log_dir;
  std::string bin_dir;
  std::string load_format = "safetensors";
  std::string routing_policy = "prefix_aware";
  EngineArgs engine_args;                 // the router's defaults
  std::vector<std::string> engine_flags;  // the ones given, passed on to the router
  ModelArgs model_args;                   // --dtype, --kv-cache-dtype
  std::vector<std::string> model_flags;   // the ones given, passed on to every worker
  Device device = Device::kCpu;           // --device resolved on this machine
  int64_t max_queued_requests = 1024;
  int64_t threads_per_worker = 0;  // 0: OMP_NUM_THREADS if set, else the cores shared out
  std::string chat_template;
  std::string tool_call_parser = "auto";
  std::string api_key;
  std::vector<std::string> router_flags;
  TlsFiles internal_tls{.flag_prefix = "--internal-tls-"};  // router <-> workers, worker -> rank 0
  std::string log_level = "info";
};

// One child process the supervisor keeps running.
struct Child {
  std::string name;      // "worker-r0-t1", "router"
  int64_t replica = -1;  // workers only
  int64_t rank = -1;
  int port = 0;
  int metrics_port = 0;  // workers: GET /metrics
  int http_port = 0;     // router: OpenAI API and GET /metrics; 0 when off
  std::vector<std::string> argv;
  std::string log_file;
  std::optional<Subprocess> process;
  absl::Time restart_at = absl::InfinitePast();
  int64_t restarts = 0;
};

std::string SelfDir() {
  std::error_code error;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", error);
  return error ? std::string(".") : self.parent_path().string();
}

absl::StatusOr<int> WaitForPortFile(const std::string& path, Child& child) {
  const absl::Time deadline = absl::Now() + kPortFileTimeout;
  while (absl::Now() < deadline) {
    std::ifstream file(path);
    int port = 0;
    if (file >> port && port > 0) return port;
    if (std::optional<int> exit = child.process->TryWait()) {
      return absl::UnavailableError(
          absl::StrCat(child.name, " exited with status ", *exit, " before it listened",
                       child.log_file.empty() ? "" : "; see ", child.log_file));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::DeadlineExceededError(absl::StrCat(child.name, " did not report its port within ",
                                                  absl::FormatDuration(kPortFileTimeout)));
}

absl::Status StartChild(Child& child) {
  ASSIGN_OR_RETURN(Subprocess process, Subprocess::Start(child.argv, {.log_file = child.log_file}));
  child.process.emplace(std::move(process));
  return absl::OkStatus();
}

absl::Status ParseServeFlags(int argc, const char* const* argv, ServeFlags& f) {
  ArgParser parser("pagoda serve",
                   "Start a local Pagoda cluster: R replicas x T tensor-parallel CPU workers "
                   "and a router, supervised.");
  parser.AddString("model", &f.model, "Model: a Hugging Face directory or a .gguf file",
                   /*required=*/true);
  parser.AddInt("replicas", &f.replicas, "Replicas (R)");
  parser.AddInt("tp", &f.tp, "Tensor-parallel ranks per replica (T)");
  parser.AddString("host", &f.host, "Address the router listens on");
  parser.AddInt("grpc-port", &f.grpc_port, "The router's gRPC port; 0 lets the OS choose");
  parser.AddInt("http-port", &f.http_port,
                "The router's OpenAI-compatible HTTP port (and /metrics); 0 lets the OS choose, "
                "-1 turns HTTP off");
  parser.AddString("port-file", &f.port_file, "Write the router's gRPC port to this file");
  parser.AddString("state-file", &f.state_file,
                   "Keep a JSON description of the cluster here (pids, ports, restarts)");
  parser.AddString("log-dir", &f.log_dir,
                   "Write each process's log to a file here (default: this terminal)");
  parser.AddString("bin-dir", &f.bin_dir,
                   "Where pagoda-router and pagoda-worker are (default: beside pagoda)");
  parser.AddString("load-format", &f.load_format, "safetensors, or dummy (random weights)");
  parser.AddString("routing-policy", &f.routing_policy,
                   "round_robin, least_loaded or prefix_aware");
  f.engine_args.Register(parser);  // passed on to pagoda-router (the KV cache: per worker)
  f.model_args.Register(parser);   // passed on to every pagoda-worker
  parser.AddInt("max-queued-requests", &f.max_queued_requests,
                "Waiting requests per replica before RESOURCE_EXHAUSTED");
  parser.AddInt("threads-per-worker", &f.threads_per_worker,
                "Compute threads (OpenMP/OpenBLAS) of each worker; 0: $OMP_NUM_THREADS if set, "
                "else this machine's cores divided among the R x T workers (at least 1)");
  parser.AddString("chat-template", &f.chat_template,
                   "A Jinja chat template file for /v1/chat/completions (default: the model's)");
  parser.AddString("tool-call-parser", &f.tool_call_parser,
                   "How chat outputs are parsed for tool calls: auto (from the chat template), "
                   "hermes, llama3_json or mistral");
  parser.AddString("api-key", &f.api_key,
                   "Require 'Authorization: Bearer KEY' on the HTTP API (default: "
                   "$PAGODA_API_KEY)");
  parser.AddStringList("router-flag", &f.router_flags,
                       "Passed to pagoda-router as is, e.g. --router-flag=--max-n=4");
  parser.AddString("internal-tls-ca", &f.internal_tls.ca_file,
                   "PEM CA of the internal certificate: mutual TLS between the router and the "
                   "workers and between the workers (with --internal-tls-cert/--internal-tls-key)");
  parser.AddString(
      "internal-tls-cert", &f.internal_tls.cert_file,
      "PEM certificate for 127.0.0.1 with server and client usages, signed by "
      "--internal-tls-ca: every worker serves it, the router and the workers present it");
  parser.AddString("internal-tls-key", &f.internal_tls.key_file,
                   "PEM private key of --internal-tls-cert");
  parser.AddString("log-level", &f.log_level, "trace, debug, info, warn, error");
  RETURN_IF_ERROR(parser.Parse(argc, argv));
  RETURN_IF_ERROR(f.internal_tls.ValidatePeer());
  RETURN_IF_ERROR(f.internal_tls.Load().status());
  for (std::string* path :
       {&f.internal_tls.ca_file, &f.internal_tls.cert_file, &f.internal_tls.key_file}) {
    if (!path->empty()) *path = std::filesystem::absolute(*path).string();
  }
  // The router and the workers would refuse these later, and forever.
  ASSIGN_OR_RETURN(const EngineSetup engine, f.engine_args.Build());
  f.engine_flags = f.engine_args.GivenFlags(parser);
  ASSIGN_OR_RETURN(const ModelMemoryConfig memory, f.model_args.Build());
  f.model_flags = f.model_args.GivenFlags(parser);
  // The workers run on this machine: --device cuda without a GPU is refused once, here.
  ASSIGN_OR_RETURN(f.device, SelectDevice(memory.device));
  if (f.replicas < 1 || f.replicas > 64) {
    return absl::InvalidArgumentError("--replicas: must be in [1, 64]");
  }
  if (f.tp < 1 || f.tp > 64) return absl::InvalidArgumentError("--tp: must be in [1, 64]");
  if (f.threads_per_worker < 0 || f.threads_per_worker > 1024) {
    return absl::InvalidArgumentError("--threads-per-worker: must be in [0, 1024]");
  }
  if (f.grpc_port < 0 || f.grpc_port > 65535) {
    return absl::InvalidArgumentError("--grpc-port: must be in [0, 65535]");
  }
  if (f.http_port < -1 || f.http_port > 65535) {
    return absl::InvalidArgumentError("--http-port: must be in [-1, 65535]");
  }
  absl::StatusOr<ModelSource> model = ModelSource::Open(f.model);
  if (!model.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--model: ", model.status().message()));
  }
  // Refuse a --tp the model cannot be split over before starting any process.
  if (absl::Status s =
          CheckTensorParallelSize(*model, f.tp, f.load_format == "dummy", memory.expert_parallel);
      !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--tp ", f.tp, ": ", s.message()));
  }
  // And a KV cache too small for one whole context, as each worker will size it (a draft
  // model's cache shares the blocks and the budget).
  std::optional<ModelSource> draft;
  if (const std::string& path = engine.engine.speculative.model; !path.empty()) {
    absl::StatusOr<ModelSource> opened = ModelSource::Open(path);
    if (!opened.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--speculative-config: the draft model: ", opened.status().message()));
    }
    if (absl::Status s = CheckDraftVocabulary(f.model, model->config(), path, opened->config());
        !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--speculative-config: ", s.message()));
    }
    if (absl::Status s = CheckTensorParallelSize(*opened, f.tp, f.load_format == "dummy",
                                                 memory.expert_parallel);
        !s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--tp ", f.tp, " and the draft model: ", s.message()));
    }
    draft.emplace(*std::move(opened));
  }
  const TensorParallelShard shard{
      .rank = 0, .size = static_cast<int32_t>(f.tp), .expert_parallel = memory.expert_parallel};
  const CacheConfig& cache = engine.cache;
  const auto blocks = [&](int64_t bytes) {
    return InProcessExecutor::NumBlocksForBudget(model->config(), cache.block_size, bytes, shard,
                                                 memory.kv_cache_dtype,
                                                 draft.has_value() ? &draft->config() : nullptr);
  };
  return engine.engine.Validate(
      {.num_device_blocks = cache.num_gpu_blocks_override > 0 ? cache.num_gpu_blocks_override
                                                              : blocks(cache.kv_cache_memory_bytes),
       .num_host_blocks = cache.swap_space_bytes > 0 ? blocks(cache.swap_space_bytes) : 0,
       .block_size = cache.block_size,
       .max_model_len = model->config().max_position_embeddings});
}

class Cluster {
 public:
  explicit Cluster(ServeFlags flags) : flags_(std::move(flags)) {}
  ~Cluster() { StopAll(); }

  absl::Status Start() {
    const std::string bin = flags_.bin_dir.empty() ? SelfDir() : flags_.bin_dir;
    char dir_template[] = "/tmp/pagoda-serve-XXXXXX";
    if (mkdtemp(dir_template) == nullptr) {
      return absl::UnavailableError(absl::StrCat("mkdtemp: ", std::strerror(errno)));
    }
    run_dir_ = dir_template;
    if (!flags_.log_dir.empty()) std::filesystem::create_directories(flags_.log_dir);
    auto log_file = [&](const std::string& name) {
      return flags_.log_dir.empty() ? std::string()
                                    : absl::StrCat(flags_.log_dir, "/", name, ".log");
    };

    // Workers first, on OS-chosen ports; each keeps its port across restarts.
    std::vector<std::string> replica_flags;
    for (int64_t r = 0; r < flags_.replicas; ++r) {
      std::vector<std::string> addresses;
      for (int64_t t = 0; t < flags_.tp; ++t) {
        const std::string name = absl::StrCat("worker-r", r, "-t", t);
        const std::string port_file = absl::StrCat(run_dir_, "/", name, ".port");
        Child& child = workers_.emplace_back();
        child.name = name;
        child.replica = r;
        child.rank = t;
        child.log_file = log_file(name);
        const std::string metrics_port_file = absl::StrCat(run_dir_, "/", name, ".metrics.port");
        child.argv = {bin + "/pagoda-worker",
                      "--host",
                      "127.0.0.1",
                      "--port",
                      "0",
                      "--port-file",
                      port_file,
                      "--metrics-port",
                      "0",
                      "--metrics-port-file",
                      metrics_port_file,
                      "--comm-host",
                      "127.0.0.1",
                      "--log-level",
                      flags_.log_level};
        child.argv.insert(child.argv.end(), flags_.model_flags.begin(), flags_.model_flags.end());
        if (flags_.device == Device::kCuda) {
          // One GPU per rank, in order; more ranks than GPUs share them round robin.
          const int64_t gpus = std::max(1, kernels::cuda::DeviceCount());
          child.argv.insert(child.argv.end(),
                            {"--cuda-device", std::to_string((r * flags_.tp + t) % gpus)});
        }
        if (const TlsFiles& tls = flags_.internal_tls; tls.enabled()) {
          child.argv.insert(child.argv.end(),
                            {"--tls-cert", tls.cert_file, "--tls-key", tls.key_file, "--tls-ca",
                             tls.ca_file, "--tls-client-ca", tls.ca_file});
        }
        RETURN_IF_ERROR(StartChild(child));
        ASSIGN_OR_RETURN(const int port, WaitForPortFile(port_file, child));
        ASSIGN_OR_RETURN(const int metrics_port, WaitForPortFile(metrics_port_file, child));
        // A restart binds the same ports, so the router's address and scrape targets stay valid.
        child.argv[4] = std::to_string(port);
        child.argv[8] = std::to_string(metrics_port);
        child.port = port;
        child.metrics_port = metrics_port;
        addresses.push_back(absl::StrCat("127.0.0.1:", port));
      }
      replica_flags.push_back(absl::StrJoin(addresses, ","));
    }

    const std::string router_port_file = absl::StrCat(run_dir_, "/router.port");
    const std::string router_http_port_file = absl::StrCat(run_dir_, "/router.http.port");
    router_.name = "router";
    router_.log_file = log_file("router");
    router_.argv = {bin + "/pagoda-router",
                    "--model",
                    flags_.model,
                    "--host",
                    flags_.host,
                    "--grpc-port",
                    std::to_string(flags_.grpc_port),
                    "--port-file",
                    router_port_file,
                    "--http-port",
                    std::to_string(flags_.http_port),
                    "--http-port-file",
                    router_http_port_file,
                    "--load-format",
                    flags_.load_format,
                    "--routing-policy",
                    flags_.routing_policy,
                    "--max-queued-requests",
                    std::to_string(flags_.max_queued_requests),
                    "--log-level",
                    flags_.log_level};
    for (const std::string& replica : replica_flags) {
      router_.argv.push_back("--replica");
      router_.argv.push_back(replica);
    }
    if (!flags_.chat_template.empty()) {
      router_.argv.push_back("--chat-template");
      router_.argv.push_back(std::filesystem::absolute(flags_.chat_template).string());
    }
    // The router checks each replica's size the way the workers will shard the experts.
    if (flags_.model_args.enable_expert_parallel) {
      router_.argv.push_back("--enable-expert-parallel");
    }
    router_.argv.push_back("--tool-call-parser");
    router_.argv.push_back(flags_.tool_call_parser);
    // The key reaches the router through its environment, not its (world-readable) argv.
    if (!flags_.api_key.empty()) setenv("PAGODA_API_KEY", flags_.api_key.c_str(), 1);
    if (const TlsFiles& tls = flags_.internal_tls; tls.enabled()) {
      router_.argv.insert(router_.argv.end(), {"--worker-tls-ca", tls.ca_file, "--worker-tls-cert",
                                               tls.cert_file, "--worker-tls-key", tls.key_file});
    }
    for (const std::string& flag : flags_.engine_flags) router_.argv.push_back(flag);
    for (const std::string& flag : flags_.router_flags) router_.argv.push_back(flag);
    RETURN_IF_ERROR(StartChild(router_));
    ASSIGN_OR_RETURN(const int port, WaitForPortFile(router_port_file, router_));
    router_.argv[6] = std::to_string(port);  // a restarted router binds the same ports
    router_.port = port;
    if (flags_.http_port >= 0) {
      ASSIGN_OR_RETURN(const int http_port, WaitForPortFile(router_http_port_file, router_));
      router_.argv[10] = std::to_string(http_port);
      router_.http_port = http_port;
      router_.metrics_port = http_port;  // the router serves /metrics on its HTTP port
    }
    WriteState();
    if (!flags_.port_file.empty()) {
      const std::string tmp = flags_.port_file + ".tmp";
      std::ofstream(tmp) << port << "\n";
      std::rename(tmp.c_str(), flags_.port_file.c_str());
    }
    std::printf("pagoda serve: %lld replica(s) x %lld worker(s); gRPC on %s:%d%s\n",
                static_cast<long long>(flags_.replicas), static_cast<long long>(flags_.tp),
                flags_.host.c_str(), port,
                router_.http_port > 0
                    ? absl::StrCat(", HTTP on http://", flags_.host, ":", router_.http_port).c_str()
                    : "");
    std::fflush(stdout);
    return absl::OkStatus();
  }

  // Restarts children that died; called every few hundred milliseconds.
  void Supervise() {
    for (Child& child : workers_) Keep(child);
    Keep(router_);
  }

  void StopAll() {
    // The router first, so it stops sending work; then the workers, with SIGINT: with the router
    // gone there is nothing to hand over, so they skip the drain SIGTERM starts.
    if (router_.process.has_value()) router_.process->Terminate(absl::Seconds(10));
    for (Child& child : workers_) {
      if (child.process.has_value()) child.process->Signal(SIGINT);
    }
    for (Child& child : workers_) {
      if (child.process.has_value()) child.process->Terminate(absl::Seconds(10));
    }
    workers_.clear();
    router_.process.reset();
    if (!run_dir_.empty()) {
      std::error_code ignored;
      std::filesystem::remove_all(run_dir_, ignored);
      run_dir_.clear();
    }
  }

 private:
  void Keep(Child& child) {
    if (!child.process.has_value()) return;
    if (child.process->running()) {
      if (std::optional<int> exit = child.process->TryWait()) {
        PAGODA_LOG(warn, "{} (pid {}) exited with status {}; restarting it", child.name,
                   child.process->pid(), *exit);
        child.restart_at = absl::Now() + kRestartDelay;
      }
      return;
    }
    if (absl::Now() < child.restart_at) return;
    if (absl::Status status = StartChild(child); !status.ok()) {
      PAGODA_LOG(error, "cannot restart {}: {}", child.name, std::string(status.message()));
      child.restart_at = absl::Now() + absl::Seconds(5);
      return;
    }
    ++child.restarts;
    PAGODA_LOG(info, "{} restarted (pid {}, restart {})", child.name, child.process->pid(),
               child.restarts);
    WriteState();
  }

  // The cluster as JSON for operators and tests, replaced atomically.
  void WriteState() const {
    if (flags_.state_file.empty()) return;
    auto describe = [](const Child& child) {
      nlohmann::json j = {{"name", child.name},
                          {"pid", child.process.has_value() ? child.process->pid() : -1},
                          {"port", child.port},
                          {"metrics_port", child.metrics_port},
                          {"restarts", child.restarts}};
      if (child.http_port > 0) j["http_port"] = child.http_port;
      if (child.replica >= 0) {
        j["replica"] = child.replica;
        j["rank"] = child.rank;
      }
      return j;
    };
    nlohmann::json state = {{"router", describe(router_)}, {"workers", nlohmann::json::array()}};
    for (const Child& child : workers_) state["workers"].push_back(describe(child));
    const std::string tmp = flags_.state_file + ".tmp";
    std::ofstream(tmp) << state.dump(2) << "\n";
    std::rename(tmp.c_str(), flags_.state_file.c_str());
  }

  const ServeFlags flags_;
  std::string run_dir_;
  std::vector<Child> workers_;
  Child router_;
};

// The cores this process may run on (its affinity mask, as a container's cpuset sets it).
int64_t AvailableCores() {
  cpu_set_t cpus;
  if (sched_getaffinity(0, sizeof(cpus), &cpus) == 0) return std::max(1, CPU_COUNT(&cpus));
  return std::max<int64_t>(1, sysconf(_SC_NPROCESSORS_ONLN));
}

// --threads-per-worker, else the cores shared out among the workers; nullopt keeps the
// OMP_NUM_THREADS the user set.
std::optional<int64_t> ThreadsPerWorker(const ServeFlags& flags) {
  if (flags.threads_per_worker > 0) return flags.threads_per_worker;
  if (const char* env = std::getenv("OMP_NUM_THREADS"); env != nullptr && *env != '\0') {
    return std::nullopt;
  }
  return std::max<int64_t>(1, AvailableCores() / (flags.replicas * flags.tp));
}

int WaitForSignalOrTick(absl::Duration tick) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  const timespec timeout{.tv_sec = 0, .tv_nsec = static_cast<long>(absl::ToInt64Nanoseconds(tick))};
  const int signal = sigtimedwait(&set, nullptr, &timeout);
  return signal > 0 ? signal : 0;
}

}  // namespace

int RunServeCommand(int argc, const char* const* argv) {
  ServeFlags flags;
  if (absl::Status status = ParseServeFlags(argc, argv, flags); !status.ok()) {
    if (absl::IsCancelled(status)) return 0;
    std::fprintf(stderr, "pagoda serve: %s\n", std::string(status.message()).c_str());
    return 2;
  }
  if (absl::Status status = InitLogging("pagoda-serve", flags.log_level); !status.ok()) {
    std::fprintf(stderr, "pagoda serve: %s\n", std::string(status.message()).c_str());
    return 2;
  }
  // Every worker's OpenMP runtime would otherwise start one thread per core: R x T workers on
  // fewer cores spin against each other (TP 3 on 2 cores ran ~5x slower). The children inherit it.
  if (const std::optional<int64_t> threads = ThreadsPerWorker(flags)) {
    setenv("OMP_NUM_THREADS", std::to_string(*threads).c_str(), /*overwrite=*/1);
  }
  const char* wait_policy = std::getenv("OMP_WAIT_POLICY");
  const char* spin_count = std::getenv("GOMP_SPINCOUNT");
  PAGODA_LOG(info,
             "{} worker(s) x OMP_NUM_THREADS={} on {} core(s), OMP_WAIT_POLICY={}, "
             "GOMP_SPINCOUNT={}",
             flags.replicas * flags.tp, std::getenv("OMP_NUM_THREADS"), AvailableCores(),
             wait_policy != nullptr ? wait_policy : "(unset)",
             spin_count != nullptr ? spin_count : "(unset)");
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  Cluster cluster(std::move(flags));
  if (absl::Status status = cluster.Start(); !status.ok()) {
    std::fprintf(stderr, "pagoda serve: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  while (true) {
    const int signal = WaitForSignalOrTick(absl::Milliseconds(200));
    if (signal != 0) {
      PAGODA_LOG(info, "signal {}: stopping the cluster", signal);
      break;
    }
    cluster.Supervise();
  }
  cluster.StopAll();
  return 0;
}

}  // namespace pagoda
