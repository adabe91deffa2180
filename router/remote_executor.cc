#include "router/remote_executor.h"

#include <algorithm>
#include <atomic>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/support/channel_arguments.h"
#include "proto/grpc_status.h"
#include "proto/grpc_tls.h"
#include "proto/step_codec.h"

namespace pagoda {
namespace {

constexpr int kMaxMessageBytes = 256 << 20;

std::chrono::system_clock::time_point Deadline(absl::Duration from_now) {
  return absl::ToChronoTime(absl::Now() + from_now);
}

}  // namespace

std::shared_ptr<grpc::Channel> CreateWorkerChannel(const std::string& address, const TlsPem& tls) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  // Notice a dead peer on an idle connection too.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10'000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5'000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // Reconnect quickly to a restarted worker.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1'000);
  // `address` is a name (a StatefulSet pod's DNS name on Kubernetes): a restarted worker may
  // come back at another IP. The channel asks its DNS resolver again whenever the connection
  // drops, but by default at most every 30 s; a second keeps rejoining as fast as reconnecting.
  args.SetInt(GRPC_ARG_DNS_MIN_TIME_BETWEEN_RESOLUTIONS_MS, 1'000);
  return grpc::CreateCustomChannel(address, ChannelCredentials(tls, args), args);
}

std::string WorkerCallError(const grpc::Status& status, const TlsPem& tls) {
  if (status.error_code() != grpc::StatusCode::UNAVAILABLE) return status.error_message();
  const std::string message = absl::AsciiStrToLower(status.error_message());
  // The router's own handshake refused the worker (its certificate, or a plaintext worker).
  const bool handshake = absl::StrContains(message, "handshake") ||
                         absl::StrContains(message, "ssl") || absl::StrContains(message, "tls") ||
                         absl::StrContains(message, "certificate");
  // The worker closed the connection while it was being set up: what a TLS worker does to a
  // plaintext client, or to a client certificate its --tls-client-ca did not sign.
  const bool closed_in_setup = absl::StrContains(message, "failed to connect") &&
                               absl::StrContains(message, "socket closed");
  if (handshake) {
    return absl::StrCat(
        "TLS handshake failed (",
        tls.client_enabled()
            ? "the workers' certificates must chain to --worker-tls-ca and hold the name dialed "
              "or --worker-tls-server-name"
            : "the router dials in plaintext: give it --worker-tls-ca",
        "): ", status.error_message());
  }
  if (closed_in_setup) {
    return absl::StrCat(
        "the worker closed the connection during setup (",
        tls.client_enabled()
            ? "its TLS handshake refused the router's client certificate: the workers' "
              "--tls-client-ca must sign --worker-tls-cert"
            : "a worker that serves TLS does so to a plaintext router: give the router "
              "--worker-tls-ca",
        "): ", status.error_message());
  }
  return status.error_message();
}

struct RemoteExecutor::StepCall {
  int64_t step_id = 0;
  std::promise<absl::StatusOr<StepResult>> promise;
  std::vector<internal::ExecuteRequest> requests;
  std::vector<internal::ExecuteResponse> responses;
  std::vector<grpc::ClientContext> contexts;
  std::vector<grpc::Status> statuses;
  std::atomic<int> remaining = 0;

  explicit StepCall(size_t num_ranks)
      : requests(num_ranks), responses(num_ranks), contexts(num_ranks), statuses(num_ranks) {}
};

absl::StatusOr<std::unique_ptr<RemoteExecutor>> RemoteExecutor::Create(
    const RemoteExecutorOptions& options, uint64_t generation) {
  const size_t num_ranks = options.worker_addresses.size();
  if (num_ranks == 0) return absl::InvalidArgumentError("a replica needs at least one worker");
  std::vector<std::unique_ptr<internal::Worker::Stub>> stubs;
  for (const std::string& address : options.worker_addresses) {
    stubs.push_back(internal::Worker::NewStub(CreateWorkerChannel(address, options.tls)));
  }

  // Every rank's Init runs at once: the communicator bootstrap needs all of them.
  std::vector<internal::InitResponse> responses(num_ranks);
  std::vector<grpc::Status> statuses(num_ranks);
  {
    std::vector<std::thread> threads;
    for (size_t rank = 0; rank < num_ranks; ++rank) {
      threads.emplace_back([&, rank] {
        internal::InitRequest request = options.init;
        request.set_generation(generation);
        request.set_tp_rank(static_cast<int32_t>(rank));
        request.set_tp_size(static_cast<int32_t>(num_ranks));
        request.set_rank0_address(options.worker_addresses[0]);
        grpc::ClientContext context;
        context.set_deadline(Deadline(options.init_timeout));
        statuses[rank] = stubs[rank]->Init(&context, request, &responses[rank]);
      });
    }
    for (std::thread& thread : threads) thread.join();
  }
  std::string errors;
  for (size_t rank = 0; rank < num_ranks; ++rank) {
    if (statuses[rank].ok()) continue;
    absl::StrAppend(&errors, errors.empty() ? "" : "; ", "rank ", rank, " (",
                    options.worker_addresses[rank],
                    "): ", WorkerCallError(statuses[rank], options.tls));
  }
  if (!errors.empty()) {
    // The first rank's code (a model that cannot load is the same error on every rank).
    for (const grpc::Status& status : statuses) {
      if (!status.ok()) {
        return absl::Status(FromGrpcStatus(status).code(),
                            absl::StrCat("replica initialization failed: ", errors));
      }
    }
  }

  ExecutorInfo info{.num_device_blocks = responses[0].num_device_blocks(),
                    .num_host_blocks = responses[0].num_host_blocks(),
                    .block_size = responses[0].block_size(),
                    .max_model_len = responses[0].max_model_len(),
                    .vocab_size = responses[0].vocab_size(),
                    .sliding_window = responses[0].sliding_window(),
                    .kv_group_windows = {responses[0].kv_group_windows().begin(),
                                         responses[0].kv_group_windows().end()}};
  for (size_t rank = 1; rank < num_ranks; ++rank) {
    const internal::InitResponse& r = responses[rank];
    if (r.block_size() != info.block_size || r.vocab_size() != info.vocab_size ||
        r.max_model_len() != info.max_model_len) {
      return absl::InternalError(absl::StrCat(
          "ranks disagree after Init: rank ", rank, " reports block size ", r.block_size(),
          ", vocabulary ", r.vocab_size(), ", max_model_len ", r.max_model_len(),
          "; rank 0 reports ", info.block_size, ", ", info.vocab_size, ", ", info.max_model_len));
    }
    // Every rank loads the same config, so the same KV cache groups: their tables are shared.
    if (!std::equal(r.kv_group_windows().begin(), r.kv_group_windows().end(),
                    info.kv_group_windows.begin(), info.kv_group_windows.end())) {
      return absl::InternalError(absl::StrCat(
          "ranks disagree after Init: rank ", rank, " reports ", r.kv_group_windows_size(),
          " KV cache groups, rank 0 ", info.kv_group_windows.size()));
    }
    // Block ids are the same on every rank: the replica has what the smallest rank has.
    info.num_device_blocks = std::min(info.num_device_blocks, r.num_device_blocks());
    info.num_host_blocks = std::min(info.num_host_blocks, r.num_host_blocks());
    // A block is freed only when no rank reads it (each may load its own draft model).
    info.sliding_window = info.sliding_window == 0 || r.sliding_window() == 0
                              ? 0
                              : std::max(info.sliding_window, r.sliding_window());
  }
  return std::unique_ptr<RemoteExecutor>(
      new RemoteExecutor(options, generation, std::move(stubs), info));
}

RemoteExecutor::~RemoteExecutor() {
  std::vector<std::shared_ptr<StepCall>> calls;
  {
    absl::MutexLock lock(&mu_);
    calls = calls_;
  }
  for (const std::shared_ptr<StepCall>& call : calls) {
    for (grpc::ClientContext& context : call->contexts) context.TryCancel();
  }
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](int64_t* in_flight) { return *in_flight == 0; }, &in_flight_));
}

int64_t RemoteExecutor::last_plan_bytes() const {
  absl::MutexLock lock(&mu_);
  return last_plan_bytes_;
}

std::future<absl::StatusOr<StepResult>> RemoteExecutor::Submit(StepPlan plan) {
  const size_t num_ranks = stubs_.size();
  auto call = std::make_shared<StepCall>(num_ranks);
  call->step_id = plan.step_id;
  std::future<absl::StatusOr<StepResult>> future = call->promise.get_future();

  internal::StepPlan encoded;
  EncodeStepPlan(plan, &encoded);
  uint64_t sequence = 0;
  {
    absl::MutexLock lock(&mu_);
    sequence = next_sequence_++;
    ++in_flight_;
    calls_.push_back(call);
    last_plan_bytes_ = static_cast<int64_t>(encoded.ByteSizeLong());
  }
  for (size_t rank = 0; rank < num_ranks; ++rank) {
    internal::ExecuteRequest& request = call->requests[rank];
    request.set_generation(generation_);
    request.set_sequence(sequence);
    request.set_want_outputs(rank == 0);
    if (rank + 1 == num_ranks) {
      *request.mutable_plan() = std::move(encoded);
    } else {
      *request.mutable_plan() = encoded;
    }
    call->contexts[rank].set_deadline(Deadline(options_.step_timeout));
  }
  call->remaining = static_cast<int>(num_ranks);
  for (size_t rank = 0; rank < num_ranks; ++rank) {
    stubs_[rank]->async()->Execute(&call->contexts[rank], &call->requests[rank],
                                   &call->responses[rank], [this, call, rank](grpc::Status status) {
                                     call->statuses[rank] = std::move(status);
                                     if (--call->remaining == 0) Finish(call);
                                   });
  }
  return future;
}

void RemoteExecutor::Finish(const std::shared_ptr<StepCall>& call) {
  absl::Status error;
  for (size_t rank = 0; rank < call->statuses.size(); ++rank) {
    const grpc::Status& status = call->statuses[rank];
    if (status.ok()) continue;
    const absl::Status rank_error = FromGrpcStatus(status);
    const std::string text = absl::StrCat("rank ", rank, " (", options_.worker_addresses[rank],
                                          "): ", rank_error.message());
    error = error.ok() ? absl::Status(rank_error.code(),
                                      absl::StrCat("step ", call->step_id, " failed: ", text))
                       : absl::Status(error.code(), absl::StrCat(error.message(), "; ", text));
  }
  if (!error.ok()) {
    call->promise.set_value(error);
  } else {
    absl::StatusOr<StepResult> result = DecodeStepResult(call->responses[0].result());
    if (result.ok() && result->step_id != call->step_id) {
      result = absl::InternalError(
          absl::StrCat("rank 0 answered step ", result->step_id, " to step ", call->step_id));
    }
    call->promise.set_value(std::move(result));
  }
  absl::MutexLock lock(&mu_);
  calls_.erase(std::find(calls_.begin(), calls_.end(), call));
  --in_flight_;
}

}  // namespace pagoda
