#include "worker/worker_service.h"

#include <algorithm>
#include <utility>

#include "common/logging.h"
#include "proto/grpc_status.h"
#include "proto/step_codec.h"
#include "worker/grpc_rendezvous_store.h"

namespace pagoda {
namespace {

constexpr int64_t kMaxStoreWaitMs = 300'000;

WorkerInitConfig FromProto(const internal::InitRequest& r) {
  return {.generation = r.generation(),
          .replica = r.replica(),
          .model_dir = r.model_dir(),
          .load_format = r.load_format(),
          .dummy_seed = r.dummy_seed(),
          .tp_rank = r.tp_rank(),
          .tp_size = r.tp_size(),
          .rank0_address = r.rank0_address(),
          .communicator = r.communicator(),
          .block_size = r.block_size(),
          .num_device_blocks = r.num_device_blocks(),
          .kv_cache_memory_bytes = r.kv_cache_memory_bytes(),
          .swap_space_bytes = r.swap_space_bytes(),
          .max_model_len = r.max_model_len(),
          .timeout_ms = r.timeout_ms(),
          .draft_model_dir = r.draft_model_dir(),
          .max_num_batched_tokens = r.max_num_batched_tokens(),
          .max_num_seqs = r.max_num_seqs(),
          .extra_eos_token_ids =
              std::vector<int32_t>(r.extra_eos_token_ids().begin(), r.extra_eos_token_ids().end())};
}

internal::HealthResponse::State ToProto(WorkerState state) {
  switch (state) {
    case WorkerState::kUninitialized:
      return internal::HealthResponse::UNINITIALIZED;
    case WorkerState::kReady:
      return internal::HealthResponse::READY;
    case WorkerState::kFailed:
      return internal::HealthResponse::FAILED;
  }
  return internal::HealthResponse::STATE_UNSPECIFIED;
}

}  // namespace

ConnectRendezvousStore GrpcRendezvousConnector(const TlsPem& tls) {
  return [tls](const std::string& rank0_address, absl::Duration timeout) {
    return std::make_unique<GrpcRendezvousStore>(rank0_address, timeout, tls);
  };
}

WorkerService::WorkerService(WorkerRuntime* runtime, std::function<void()> request_exit)
    : runtime_(runtime), request_exit_(std::move(request_exit)) {}

grpc::Status WorkerService::Init(grpc::ServerContext*, const internal::InitRequest* request,
                                 internal::InitResponse* response) {
  absl::StatusOr<WorkerInitResult> init = runtime_->Init(FromProto(*request));
  if (!init.ok()) return ToGrpcStatus(init.status());
  response->set_num_device_blocks(init->num_device_blocks);
  response->set_num_host_blocks(init->num_host_blocks);
  response->set_block_size(init->block_size);
  response->set_max_model_len(init->max_model_len);
  response->set_vocab_size(init->vocab_size);
  response->set_sliding_window(init->sliding_window);
  for (int64_t window : init->kv_group_windows) response->add_kv_group_windows(window);
  response->set_weight_bytes(init->weight_bytes);
  response->set_kv_cache_bytes(init->kv_cache_bytes);
  response->set_communicator(init->communicator);
  return grpc::Status::OK;
}

grpc::Status WorkerService::Execute(grpc::ServerContext*, const internal::ExecuteRequest* request,
                                    internal::ExecuteResponse* response) {
  // Decoding needs no state: it happens before the plan waits for its turn.
  absl::StatusOr<AppliedStep> step = runtime_->Execute({.generation = request->generation(),
                                                        .sequence = request->sequence(),
                                                        .step_id = request->plan().step_id()},
                                                       DecodeStepPlan(request->plan()));
  if (!step.ok()) return ToGrpcStatus(step.status());
  if (request->want_outputs()) EncodeStepResult(step->result, response->mutable_result());
  response->set_step_seconds(step->step_seconds);
  return grpc::Status::OK;
}

grpc::Status WorkerService::Health(grpc::ServerContext*, const internal::HealthRequest*,
                                   internal::HealthResponse* response) {
  const WorkerHealth health = runtime_->Health();
  response->set_state(health.draining ? internal::HealthResponse::DRAINING : ToProto(health.state));
  response->set_generation(health.generation);
  response->set_tp_rank(health.tp_rank);
  response->set_tp_size(health.tp_size);
  response->set_next_sequence(health.next_sequence);
  response->set_error(health.error);
  response->set_num_sequences(health.num_sequences);
  return grpc::Status::OK;
}

grpc::Status WorkerService::Shutdown(grpc::ServerContext*, const internal::ShutdownRequest* request,
                                     internal::ShutdownResponse*) {
  runtime_->Shutdown();
  PAGODA_LOG(info, "shut down by the router{}", request->exit_process() ? "; exiting" : "");
  if (request->exit_process() && request_exit_) request_exit_();
  return grpc::Status::OK;
}

grpc::Status WorkerService::StoreSet(grpc::ServerContext*, const internal::StoreSetRequest* request,
                                     internal::StoreSetResponse*) {
  return ToGrpcStatus(runtime_->bootstrap_store().Set(request->key(), request->value()));
}

grpc::Status WorkerService::StoreGet(grpc::ServerContext*, const internal::StoreGetRequest* request,
                                     internal::StoreGetResponse* response) {
  const int64_t wait_ms = std::clamp<int64_t>(request->timeout_ms(), 0, kMaxStoreWaitMs);
  absl::StatusOr<std::string> value =
      runtime_->bootstrap_store().Get(request->key(), absl::Milliseconds(wait_ms));
  if (!value.ok()) return ToGrpcStatus(value.status());
  response->set_value(std::move(*value));
  return grpc::Status::OK;
}

}  // namespace pagoda
