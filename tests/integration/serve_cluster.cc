#include "tests/integration/serve_cluster.h"

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "tests/testing/stories260k.h"

namespace pagoda::testing {
namespace {

namespace fs = std::filesystem;

std::string LastLines(const std::string& path, size_t count) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::string out;
  for (size_t i = lines.size() > count ? lines.size() - count : 0; i < lines.size(); ++i) {
    absl::StrAppend(&out, lines[i], "\n");
  }
  return out;
}

}  // namespace

v1::GenerateRequest GreedyRequest(const std::string& prompt, int max_tokens) {
  v1::GenerateRequest request;
  request.set_text(prompt);
  request.mutable_sampling()->set_temperature(0);
  request.mutable_sampling()->set_max_tokens(max_tokens);
  return request;
}

absl::StatusOr<std::unique_ptr<ServeCluster>> ServeCluster::Start(const ServeOptions& options) {
  std::unique_ptr<ServeCluster> cluster(new ServeCluster());
  static int counter = 0;
  cluster->dir_ =
      (fs::temp_directory_path() / absl::StrCat("pagoda_serve_", getpid(), "_", counter++))
          .string();
  fs::create_directories(cluster->dir_);
  const std::string port_file = cluster->dir_ + "/port";
  std::vector<std::string> argv = {std::string(PAGODA_BIN_DIR) + "/pagoda",
                                   "serve",
                                   "--model",
                                   options.model_dir.empty() ? Stories260KDir() : options.model_dir,
                                   "--replicas",
                                   std::to_string(options.replicas),
                                   "--tp",
                                   std::to_string(options.tp),
                                   "--grpc-port",
                                   "0",
                                   "--http-port",
                                   "0",
                                   "--port-file",
                                   port_file,
                                   "--state-file",
                                   cluster->dir_ + "/state.json",
                                   "--log-dir",
                                   cluster->dir_ + "/logs",
                                   "--num-gpu-blocks-override",
                                   "512"};
  argv.insert(argv.end(), options.extra_args.begin(), options.extra_args.end());
  absl::StatusOr<Subprocess> serve =
      Subprocess::Start(argv, {.log_file = cluster->dir_ + "/serve.log"});
  if (!serve.ok()) return serve.status();
  cluster->serve_.emplace(std::move(*serve));

  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (cluster->port_ == 0) {
    std::ifstream in(port_file);
    if (!(in >> cluster->port_)) cluster->port_ = 0;
    if (cluster->port_ > 0) break;
    if (std::optional<int> exit = cluster->serve_->TryWait()) {
      return absl::UnavailableError(
          absl::StrCat("pagoda serve exited with ", *exit, ":\n", cluster->LogTails()));
    }
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError("pagoda serve did not start:\n" + cluster->LogTails());
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  cluster->authorization_ = options.authorization;
  cluster->stub_ = v1::Generation::NewStub(
      grpc::CreateChannel(cluster->target(), grpc::InsecureChannelCredentials()));
  if (absl::Status ready = cluster->WaitUntilReady(options.replicas, absl::Seconds(60));
      !ready.ok()) {
    return ready;
  }
  return cluster;
}

ServeCluster::~ServeCluster() {
  if (::testing::Test::HasFailure()) {
    std::fprintf(stderr, "---- cluster logs (%s) ----\n%s", dir_.c_str(), LogTails().c_str());
  }
  if (serve_.has_value()) serve_->Terminate(absl::Seconds(30));
  std::error_code ignored;
  fs::remove_all(dir_, ignored);
}

nlohmann::json ServeCluster::State() const {
  std::ifstream in(dir_ + "/state.json");
  return nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
}

int ServeCluster::http_port() const {
  const nlohmann::json state = State();
  return state.is_object() ? state["router"].value("http_port", 0) : 0;
}

int ServeCluster::WorkerPid(int replica, int rank) const {
  const nlohmann::json state = State();
  for (const nlohmann::json& worker : state["workers"]) {
    if (worker["replica"] == replica && worker["rank"] == rank) return worker["pid"];
  }
  return -1;
}

std::unique_ptr<internal::Worker::Stub> ServeCluster::WorkerStub(int replica, int rank) const {
  const nlohmann::json state = State();
  for (const nlohmann::json& worker : state["workers"]) {
    if (worker["replica"] == replica && worker["rank"] == rank) {
      return internal::Worker::NewStub(
          grpc::CreateChannel(absl::StrCat("127.0.0.1:", worker["port"].get<int>()),
                              grpc::InsecureChannelCredentials()));
    }
  }
  return nullptr;
}

v1::GetServerInfoResponse ServeCluster::Info() {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  if (!authorization_.empty()) context.AddMetadata("authorization", authorization_);
  v1::GetServerInfoResponse response;
  stub_->GetServerInfo(&context, v1::GetServerInfoRequest(), &response);
  return response;
}

absl::Status ServeCluster::WaitUntilReady(int count, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int ready = 0;
    const v1::GetServerInfoResponse info = Info();
    for (const v1::ReplicaInfo& replica : info.replicas()) ready += replica.state() == "ready";
    if (ready >= count) return absl::OkStatus();
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("only ", ready, " of ", count, " replicas ready:\n", LogTails()));
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
}

std::string ServeCluster::LogTails() const {
  std::string out = absl::StrCat("[serve.log]\n", LastLines(dir_ + "/serve.log", 30));
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(dir_ + "/logs", error)) {
    absl::StrAppend(&out, "[", entry.path().filename().string(), "]\n",
                    LastLines(entry.path().string(), 20));
  }
  return out;
}

}  // namespace pagoda::testing
