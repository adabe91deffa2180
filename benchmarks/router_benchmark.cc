// Router overhead with no model: two replicas of SimulatedExecutor (router/simulated_executor.h)
// behind the real ReplicaSet, Frontend and GenerationService, served by a grpc::Server on
// 127.0.0.1, and N streaming clients in a child process (this binary re-run with --client) that
// call Generate through real gRPC channels. Figures only. Method and figures: docs/performance.md,
// "Router and tensor parallelism (issue 4)".
//
//   BM_RouterStreaming/streams/max_tokens/step_us
//       streams      concurrent Generate streams (one gRPC channel, one connection, each)
//       max_tokens   64: token streaming (4 requests per stream per iteration);
//                    1: admission, many short requests (32 per stream per iteration)
//       step_us      simulated step time: 0 is pure router overhead; 2000 stands for a worker
//                    step of 2 ms
//
// Every request has a distinct 32-token token_ids prompt (no prefix sharing, so prefix-aware
// routing balances by load), ignore_eos and max_tokens, so it streams exactly max_tokens tokens.
// Counters:
//   tokens_per_s, requests_per_s     output tokens counted in the received deltas, requests
//                                    finished, per second of the clients' streaming wall time
//   router_cpu_us_per_token/request  CPU time (user + system, getrusage) of this process, the
//                                    router, over exactly the streaming window, per token/request
//   router_cores                     that CPU time / wall time: how much of the 2 cores it needs
//   sim_cpu_us_per_token             the part of it spent in SimulatedExecutor::Apply (the
//                                    simulated workers' bookkeeping, not router work)
//   client_cpu_us_per_token          the client process's CPU time (a real client's own cost)
//   tokens_per_step                  mean output tokens per forward pass (batching)
//
// The simulated step cost is a sleep, not SimulatedExecutor's busy-wait: a real worker step runs
// in another process (on another machine or GPU) while the router waits on the network, and a
// busy-wait would charge both replicas' "worker" time to the router's two cores. Steps of one
// replica run back to back in submission order (the next one starts when the previous one ends),
// so with async output the router plans step n + 1 while step n "runs", as with real workers.
// The clients run in a child process so that getrusage(RUSAGE_SELF) is the router's alone; they
// still share the machine's cores with it.
//
//   build/benchmarks/router_benchmark --benchmark_min_time=0.1
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "benchmark/benchmark.h"
#include "common/logging.h"
#include "common/step/executor.h"
#include "common/tokenizer/tokenizer.h"
#include "engine/engine_config.h"
#include "engine/simulated_executor.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "pagoda/v1/generation.grpc.pb.h"
#include "router/frontend/frontend.h"
#include "router/frontend/generation_service.h"
#include "router/global_scheduler.h"
#include "router/replica_set.h"
#include "tools/bench/synthetic_tokenizer.h"

extern char** environ;

namespace pagoda {
namespace {

constexpr int64_t kVocabSize = 32000;
constexpr int32_t kEos = 2;
constexpr int64_t kBlockSize = 16;
constexpr int64_t kMaxModelLen = 2048;
constexpr int64_t kPromptTokens = 32;
constexpr int32_t kNumReplicas = 2;
constexpr char kModelName[] = "bench";

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "router_benchmark: %s\n", message.c_str());
  std::abort();
}

int64_t ThreadCpuNs() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

double ProcessCpuSeconds() {
  rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + tv.tv_usec * 1e-6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// A BPE tokenizer whose vocabulary is "t<id>" for every id, without merges: the output processor
// detokenizes every generated id as it would with a real tokenizer.
const Tokenizer& SyntheticTokenizer() {
  static const Tokenizer* tokenizer = [] {
    auto made = MakeSyntheticTokenizer(kVocabSize);
    if (!made.ok()) Die(std::string(made.status().message()));
    return made->release();
  }();
  return *tokenizer;
}

// What the simulated replicas did, summed over both (written by their engine loop threads).
struct SimulatedWork {
  std::atomic<int64_t> apply_cpu_ns{0};
  std::atomic<int64_t> steps{0};
};

// SimulatedExecutor's bookkeeping with a step cost paid in wall time only: the result of a step
// is computed at Submit and handed out, through a deferred future, once the step's simulated end
// has passed. A step starts when the previous one ends (or at Submit when the replica is idle).
class PacedExecutor final : public Executor {
 public:
  PacedExecutor(SimulatedExecutorOptions options, std::chrono::microseconds step_cost,
                SimulatedWork* work)
      : simulated_(std::move(options)), step_cost_(step_cost), work_(work) {}

  const ExecutorInfo& info() const override { return simulated_.info(); }

  std::future<absl::StatusOr<StepResult>> Submit(StepPlan plan) override {
    const int64_t cpu_start_ns = ThreadCpuNs();
    absl::StatusOr<StepResult> result = simulated_.Apply(plan);
    work_->apply_cpu_ns.fetch_add(ThreadCpuNs() - cpu_start_ns, std::memory_order_relaxed);
    work_->steps.fetch_add(1, std::memory_order_relaxed);
    busy_until_ = std::max(busy_until_, Clock::now()) + step_cost_;
    return std::async(std::launch::deferred,
                      [end = busy_until_, result = std::move(result)]() mutable {
                        std::this_thread::sleep_until(end);
                        return std::move(result);
                      });
  }

 private:
  using Clock = std::chrono::steady_clock;

  SimulatedExecutor simulated_;
  const std::chrono::microseconds step_cost_;
  SimulatedWork* const work_;
  Clock::time_point busy_until_;  // the simulated end of the last step submitted
};

// The router of pagoda-router (router/router_main.cc) over kNumReplicas simulated replicas,
// listening on 127.0.0.1 at a port the OS picks.
class SimulatedRouter {
 public:
  SimulatedRouter(std::chrono::microseconds step_cost, SimulatedWork* work) {
    const EngineConfig engine{.max_num_seqs = 256,
                              .max_num_batched_tokens = 4096,
                              .max_model_len = kMaxModelLen,
                              .enable_prefix_caching = true,
                              .max_waiting_requests = 1024};
    const SimulatedExecutorOptions simulated{.info = {.num_device_blocks = 16384,
                                                      .block_size = kBlockSize,
                                                      .max_model_len = kMaxModelLen,
                                                      .vocab_size = kVocabSize},
                                             .eos_token_ids = {kEos}};
    ReplicaSetOptions options{
        .scheduler = {.policy = RoutingPolicy::kPrefixAware, .block_size = kBlockSize}};
    for (int32_t i = 0; i < kNumReplicas; ++i) {
      // No worker addresses: nothing to health-check, the supervisor just starts the engine.
      options.replicas.push_back(
          {.index = i,
           .make_executor = [=](uint64_t) -> absl::StatusOr<std::unique_ptr<Executor>> {
             return std::make_unique<PacedExecutor>(simulated, step_cost, work);
           },
           .engine = engine,
           .tokenizer = &SyntheticTokenizer(),
           .eos_token_ids = {kEos},
           .health_interval = absl::Milliseconds(100)});
    }
    replicas_ = std::make_unique<ReplicaSet>(std::move(options));
    if (!replicas_->WaitUntilReady(kNumReplicas, absl::Seconds(30))) Die("replicas not ready");
    frontend_ = std::make_unique<Frontend>(
        replicas_.get(), &SyntheticTokenizer(),
        FrontendOptions{.model_name = kModelName,
                        .limits = {.max_model_len = kMaxModelLen, .vocab_size = kVocabSize}});
    service_ = std::make_unique<GenerationService>(frontend_.get(), "router_benchmark",
                                                   "prefix_aware", /*max_queued_requests=*/1024);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    if (server_ == nullptr || port_ == 0) Die("cannot listen on 127.0.0.1");
  }

  ~SimulatedRouter() {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    server_->Wait();
  }

  int port() const { return port_; }

 private:
  std::unique_ptr<ReplicaSet> replicas_;
  std::unique_ptr<Frontend> frontend_;
  std::unique_ptr<GenerationService> service_;
  std::unique_ptr<grpc::Server> server_;  // after what it serves: shut down first
  int port_ = 0;
};

// --- The client process -------------------------------------------------------------------------
// router_benchmark --client PORT STREAMS MAX_TOKENS NUM_REQUESTS
// Connects one channel per stream, prints "ready", waits for a byte on stdin, runs the requests
// on STREAMS threads and prints "done <tokens> <requests> <errors> <wall_s> <cpu_s>".

struct ClientArgs {
  int port = 0;
  int streams = 0;
  int max_tokens = 0;
  int num_requests = 0;
};

v1::GenerateRequest MakeRequest(int64_t index, int max_tokens) {
  v1::GenerateRequest request;
  request.set_model(kModelName);
  for (int64_t p = 0; p < kPromptTokens; ++p) {
    request.mutable_token_ids()->add_ids(
        3 + static_cast<int32_t>((index * 104729 + p * 7919) % (kVocabSize - 3)));
  }
  v1::SamplingParams& sampling = *request.mutable_sampling();
  sampling.set_max_tokens(max_tokens);
  sampling.set_ignore_eos(true);
  sampling.set_seed(static_cast<uint64_t>(index));
  return request;
}

int RunClient(const ClientArgs& args) {
  const std::string address = absl::StrCat("127.0.0.1:", args.port);
  std::vector<std::unique_ptr<v1::Generation::Stub>> stubs;
  for (int s = 0; s < args.streams; ++s) {
    grpc::ChannelArguments channel_args;
    channel_args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a connection per stream
    std::shared_ptr<grpc::Channel> channel =
        grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), channel_args);
    if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
      std::fprintf(stderr, "router_benchmark client: cannot connect to %s\n", address.c_str());
      return 1;
    }
    stubs.push_back(v1::Generation::NewStub(channel));
  }
  std::printf("ready\n");
  std::fflush(stdout);
  char go = 0;
  if (read(STDIN_FILENO, &go, 1) != 1) return 1;

  const double cpu_start = ProcessCpuSeconds();
  const auto start = std::chrono::steady_clock::now();
  std::atomic<int64_t> next{0}, tokens{0}, errors{0};
  std::vector<std::thread> threads;
  for (int s = 0; s < args.streams; ++s) {
    threads.emplace_back([&, s] {
      for (int64_t i = next++; i < args.num_requests; i = next++) {
        grpc::ClientContext context;
        std::unique_ptr<grpc::ClientReader<v1::GenerateResponse>> reader =
            stubs[s]->Generate(&context, MakeRequest(i, args.max_tokens));
        v1::GenerateResponse response;
        int64_t received = 0;
        while (reader->Read(&response)) {
          for (const v1::Completion& out : response.outputs()) received += out.token_ids_size();
        }
        const grpc::Status status = reader->Finish();
        if (!status.ok() || received != args.max_tokens) {
          if (errors++ == 0) {
            std::fprintf(stderr,
                         "router_benchmark client: request %" PRId64 ": %s (%" PRId64 " tokens)\n",
                         i, status.error_message().c_str(), received);
          }
        }
        tokens += received;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("done %" PRId64 " %d %" PRId64 " %.9f %.9f\n", tokens.load(), args.num_requests,
              errors.load(), seconds, ProcessCpuSeconds() - cpu_start);
  std::fflush(stdout);
  return 0;
}

// --- The router side ----------------------------------------------------------------------------

struct ClientRun {
  int64_t tokens = 0;
  int64_t requests = 0;
  int64_t errors = 0;
  double seconds = 0;       // the clients' streaming wall time
  double client_cpu_s = 0;  // the client process's CPU time in that window
  double router_cpu_s = 0;  // this process's CPU time in that window
};

// Runs one client process (args.port: the router's) and measures this process's CPU time from the
// moment the clients start until they report.
ClientRun RunClientProcess(const ClientArgs& args) {
  // Close-on-exec: the child keeps only the two ends dup2'ed onto its stdin and stdout.
  int to_child[2], from_child[2];
  if (pipe2(to_child, O_CLOEXEC) != 0 || pipe2(from_child, O_CLOEXEC) != 0) Die("pipe failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, to_child[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, from_child[1], STDOUT_FILENO);
  std::vector<std::string> arg_strings = {"router_benchmark",
                                          "--client",
                                          absl::StrCat(args.port),
                                          absl::StrCat(args.streams),
                                          absl::StrCat(args.max_tokens),
                                          absl::StrCat(args.num_requests)};
  std::vector<char*> argv;
  for (std::string& a : arg_strings) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawn(&pid, "/proc/self/exe", &actions, nullptr, argv.data(), environ) != 0) {
    Die("cannot start the client process");
  }
  posix_spawn_file_actions_destroy(&actions);
  close(to_child[0]);
  close(from_child[1]);
  FILE* from = fdopen(from_child[0], "r");
  char line[256];
  if (std::fgets(line, sizeof(line), from) == nullptr || std::string_view(line) != "ready\n") {
    Die("the client process did not get ready");
  }
  const double router_cpu_start = ProcessCpuSeconds();
  if (write(to_child[1], "g", 1) != 1) Die("cannot start the clients");
  ClientRun run;
  if (std::fgets(line, sizeof(line), from) == nullptr ||
      std::sscanf(line, "done %" SCNd64 " %" SCNd64 " %" SCNd64 " %lf %lf", &run.tokens,
                  &run.requests, &run.errors, &run.seconds, &run.client_cpu_s) != 5) {
    Die("the client process did not report");
  }
  run.router_cpu_s = ProcessCpuSeconds() - router_cpu_start;
  std::fclose(from);
  close(to_child[1]);
  int wait_status = 0;
  waitpid(pid, &wait_status, 0);
  if (!WIFEXITED(wait_status) || WEXITSTATUS(wait_status) != 0) Die("the client process failed");
  return run;
}

// Args: {streams, max_tokens, step_us}.
void BM_RouterStreaming(benchmark::State& state) {
  const int streams = static_cast<int>(state.range(0));
  const int max_tokens = static_cast<int>(state.range(1));
  const std::chrono::microseconds step_cost(state.range(2));
  SimulatedWork work;
  SimulatedRouter router(step_cost, &work);
  const ClientArgs args{.port = router.port(),
                        .streams = streams,
                        .max_tokens = max_tokens,
                        .num_requests = streams * (max_tokens == 1 ? 32 : 4)};
  ClientRun total;
  int64_t apply_cpu_ns = 0, steps = 0;
  for (auto _ : state) {
    const int64_t apply_start = work.apply_cpu_ns.load(), steps_start = work.steps.load();
    const ClientRun run = RunClientProcess(args);
    apply_cpu_ns += work.apply_cpu_ns.load() - apply_start;
    steps += work.steps.load() - steps_start;
    state.SetIterationTime(run.seconds);
    total.tokens += run.tokens;
    total.requests += run.requests;
    total.errors += run.errors;
    total.seconds += run.seconds;
    total.client_cpu_s += run.client_cpu_s;
    total.router_cpu_s += run.router_cpu_s;
  }
  if (total.errors > 0) state.SkipWithError("some requests failed (see stderr)");
  const auto tokens = static_cast<double>(total.tokens);
  const auto requests = static_cast<double>(total.requests);
  state.counters["tokens_per_s"] = benchmark::Counter(tokens, benchmark::Counter::kIsRate);
  state.counters["requests_per_s"] = benchmark::Counter(requests, benchmark::Counter::kIsRate);
  state.counters["router_cpu_us_per_token"] = total.router_cpu_s * 1e6 / tokens;
  state.counters["router_cpu_us_per_request"] = total.router_cpu_s * 1e6 / requests;
  state.counters["router_cores"] = total.router_cpu_s / total.seconds;
  state.counters["sim_cpu_us_per_token"] = static_cast<double>(apply_cpu_ns) * 1e-3 / tokens;
  state.counters["client_cpu_us_per_token"] = total.client_cpu_s * 1e6 / tokens;
  state.counters["tokens_per_step"] = tokens / static_cast<double>(std::max<int64_t>(steps, 1));
  state.SetLabel(absl::StrCat(streams, " streams, max_tokens ", max_tokens, ", step ",
                              state.range(2) / 1000.0, " ms"));
}

BENCHMARK(BM_RouterStreaming)
    ->ArgNames({"streams", "max_tokens", "step_us"})
    ->ArgsProduct({{16, 64}, {64, 1}, {0, 2000}})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

int ClientMain(int argc, char** argv) {
  ClientArgs args;
  if (argc != 6 || !absl::SimpleAtoi(argv[2], &args.port) ||
      !absl::SimpleAtoi(argv[3], &args.streams) || !absl::SimpleAtoi(argv[4], &args.max_tokens) ||
      !absl::SimpleAtoi(argv[5], &args.num_requests)) {
    std::fprintf(stderr, "usage: router_benchmark --client PORT STREAMS MAX_TOKENS NUM_REQUESTS\n");
    return 2;
  }
  return RunClient(args);
}

}  // namespace
}  // namespace pagoda

int main(int argc, char** argv) {
  if (argc > 1 && std::string_view(argv[1]) == "--client") return pagoda::ClientMain(argc, argv);
  signal(SIGPIPE, SIG_IGN);  // a client process that dies is reported, not fatal to the router
  if (absl::Status status = pagoda::InitLogging("router_benchmark", "warn"); !status.ok()) {
    return 1;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
