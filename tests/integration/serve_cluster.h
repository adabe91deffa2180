// Test support: a real local cluster started with `pagoda serve` (router + R x T workers as
// processes on loopback, OS-chosen ports), a gRPC stub to it, the cluster's state file (pids,
// ports) and, when a test fails, the tail of every process's log.
//
//   ASSERT_OK_AND_ASSIGN(auto cluster, ServeCluster::Start({.replicas = 2, .tp = 2}));
//   v1::CompleteResponse response;
//   grpc::ClientContext context;
//   cluster->stub().Complete(&context, request, &response);
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/subprocess.h"
#include "nlohmann/json.hpp"
#include "pagoda/internal/worker.grpc.pb.h"
#include "pagoda/v1/generation.grpc.pb.h"

namespace pagoda::testing {

struct ServeOptions {
  int replicas = 2;
  int tp = 2;
  std::string model_dir;                // empty: the converted stories260K
  std::vector<std::string> extra_args;  // more `pagoda serve` flags
  /// The `authorization` metadata the harness's own calls (Info, readiness) send, for a router
  /// started with API keys: "Bearer <key>".
  std::string authorization;
};

class ServeCluster {
 public:
  /// Starts the cluster and waits until every replica is ready.
  static absl::StatusOr<std::unique_ptr<ServeCluster>> Start(const ServeOptions& options);
  /// SIGTERM to `pagoda serve`, which stops the router and the workers.
  ~ServeCluster();

  std::string target() const { return "127.0.0.1:" + std::to_string(port_); }
  v1::Generation::Stub& stub() { return *stub_; }
  /// The router's HTTP port (OpenAI API, /metrics), from the state file.
  int http_port() const;
  /// A stub to worker (replica, rank), from the state file.
  std::unique_ptr<internal::Worker::Stub> WorkerStub(int replica, int rank) const;
  /// `pagoda serve --state-file` as JSON (router and worker pids, ports, restarts).
  nlohmann::json State() const;
  int WorkerPid(int replica, int rank) const;

  v1::GetServerInfoResponse Info();
  /// Waits until GetServerInfo shows at least `count` ready replicas.
  absl::Status WaitUntilReady(int count, absl::Duration timeout);
  /// The last lines of every process's log (for failure messages).
  std::string LogTails() const;

 private:
  ServeCluster() = default;

  std::string dir_;  // state, port and log files
  std::optional<Subprocess> serve_;
  int port_ = 0;
  std::string authorization_;
  std::unique_ptr<v1::Generation::Stub> stub_;
};

/// A greedy request for `prompt` (temperature 0).
v1::GenerateRequest GreedyRequest(const std::string& prompt, int max_tokens);

}  // namespace pagoda::testing
