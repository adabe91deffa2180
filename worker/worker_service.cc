#include "worker/worker_service.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/model_config.h"
#include "common/status_macros.h"
#include "proto/grpc_status.h"
#include "proto/step_codec.h"
#include "worker/gloo_communicator.h"
#include "worker/grpc_rendezvous_store.h"
#include "worker/in_process_executor.h"
#include "worker/model_runner.h"
#include "worker/model_weights.h"
#include "worker/tensor_parallel.h"

namespace pagoda {
namespace {

constexpr absl::Duration kDefaultCommTimeout = absl::Seconds(30);
constexpr int64_t kMaxStoreWaitMs = 300'000;

absl::Status WithRank(const absl::Status& status, int32_t rank) {
  return absl::Status(status.code(), absl::StrCat("worker rank ", rank, ": ", status.message()));
}

absl::Status ValidateInit(const internal::InitRequest& r) {
  if (r.tp_size() < 1) {
    return absl::InvalidArgumentError(absl::StrCat("tp_size must be >= 1, got ", r.tp_size()));
  }
  if (r.tp_rank() < 0 || r.tp_rank() >= r.tp_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tp_rank must be in [0, ", r.tp_size(), "), got ", r.tp_rank()));
  }
  if (r.block_size() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("block_size must be positive, got ", r.block_size()));
  }
  if (r.num_device_blocks() < 0 || r.kv_cache_memory_bytes() < 0 || r.swap_space_bytes() < 0 ||
      r.max_model_len() < 0 || r.timeout_ms() < 0) {
    return absl::InvalidArgumentError(
        "num_device_blocks, kv_cache_memory_bytes, swap_space_bytes, max_model_len and "
        "timeout_ms must not be negative");
  }
  if (r.num_device_blocks() == 0 && r.kv_cache_memory_bytes() == 0) {
    return absl::InvalidArgumentError(
        "either num_device_blocks or kv_cache_memory_bytes must be set");
  }
  if (r.tp_size() > 1 && r.rank0_address().empty()) {
    return absl::InvalidArgumentError("rank0_address is required when tp_size > 1");
  }
  if (r.load_format() != "" && r.load_format() != "safetensors" && r.load_format() != "dummy") {
    return absl::InvalidArgumentError(
        absl::StrCat("load_format must be 'safetensors' or 'dummy', got '", r.load_format(), "'"));
  }
  if (r.communicator() != "" && r.communicator() != "auto" && r.communicator() != "gloo") {
    if (r.communicator() == "nccl") {
      return absl::UnimplementedError(
          "communicator 'nccl' needs the CUDA backend; this worker runs the CPU backend (gloo)");
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "communicator must be 'auto', 'gloo' or 'nccl', got '", r.communicator(), "'"));
  }
  return absl::OkStatus();
}

}  // namespace

WorkerService::WorkerService(const WorkerServiceOptions& options,
                             std::function<void()> request_exit)
    : options_(options), request_exit_(std::move(request_exit)) {}

WorkerService::~WorkerService() {
  absl::MutexLock lock(&mu_);
  AcquireRuntimeLocked();
  runtime_.reset();
}

void WorkerService::AcquireRuntimeLocked() {
  mu_.Await(absl::Condition(
      +[](bool* busy) { return !*busy; }, &busy_));
}

absl::StatusOr<std::unique_ptr<WorkerService::Runtime>> WorkerService::Build(
    const internal::InitRequest& r, internal::InitResponse* response) {
  RETURN_IF_ERROR(ValidateInit(r));
  const std::string dir = options_.model_dir.empty() ? r.model_dir() : options_.model_dir;
  if (dir.empty()) return absl::InvalidArgumentError("model_dir is empty");
  auto config = ModelConfig::FromDirectory(dir);
  if (!config.ok()) {
    return absl::Status(config.status().code(), absl::StrCat("cannot load the model config from ",
                                                             dir, ": ", config.status().message()));
  }
  const TensorParallelShard shard{.rank = r.tp_rank(), .size = r.tp_size()};
  RETURN_IF_ERROR(ValidateTensorParallel(*config, shard));

  auto weights = r.load_format() == "dummy" ? DummyModelWeights(*config, r.dummy_seed(), shard)
                                            : LoadModelWeights(*config, dir, shard);
  if (!weights.ok()) {
    return absl::Status(weights.status().code(), absl::StrCat("cannot load the model from ", dir,
                                                              ": ", weights.status().message()));
  }
  const int64_t weight_bytes = weights->num_bytes();

  auto runtime = std::make_unique<Runtime>();
  if (r.tp_size() == 1) {
    runtime->communicator = CreateSingleCommunicator();
  } else {
    const absl::Duration timeout =
        r.timeout_ms() > 0 ? absl::Milliseconds(r.timeout_ms()) : kDefaultCommTimeout;
    std::unique_ptr<GrpcRendezvousStore> remote;
    RendezvousStore* store = &store_;
    if (r.tp_rank() != 0) {
      remote = std::make_unique<GrpcRendezvousStore>(r.rank0_address(), timeout);
      store = remote.get();
    }
    ASSIGN_OR_RETURN(
        runtime->communicator,
        CreateGlooCommunicator({.rank = r.tp_rank(),
                                .size = r.tp_size(),
                                .hostname = options_.comm_host,
                                .prefix = absl::StrCat(r.replica(), "/g", r.generation(), "/"),
                                .timeout = timeout},
                               store));
  }

  if (options_.metrics != nullptr) {
    runtime->communicator =
        std::make_unique<TimedCommunicator>(std::move(runtime->communicator), options_.metrics);
  }

  const int64_t block_size = r.block_size();
  const int64_t num_device_blocks =
      r.num_device_blocks() > 0 ? r.num_device_blocks()
                                : InProcessExecutor::NumBlocksForBudget(
                                      *config, block_size, r.kv_cache_memory_bytes(), shard);
  if (num_device_blocks <= 0) {
    return absl::ResourceExhaustedError(
        absl::StrCat("kv_cache_memory_bytes ", r.kv_cache_memory_bytes(), " holds no KV block of ",
                     block_size, " tokens for this model"));
  }
  const int64_t num_host_blocks =
      r.swap_space_bytes() > 0
          ? InProcessExecutor::NumBlocksForBudget(*config, block_size, r.swap_space_bytes(), shard)
          : 0;
  const int64_t max_model_len = r.max_model_len() > 0
                                    ? std::min(r.max_model_len(), config->max_position_embeddings)
                                    : config->max_position_embeddings;
  ASSIGN_OR_RETURN(std::unique_ptr<ModelRunner> runner,
                   ModelRunner::Create(*config, std::move(*weights),
                                       {.num_blocks = num_device_blocks,
                                        .block_size = block_size,
                                        .max_positions = max_model_len,
                                        .shard = shard,
                                        .communicator = runtime->communicator.get()}));
  ASSIGN_OR_RETURN(
      runtime->steps,
      StepRunner::Create(std::move(runner),
                         {.num_host_blocks = num_host_blocks,
                          .extra_eos_token_ids = std::vector<int32_t>(
                              r.extra_eos_token_ids().begin(), r.extra_eos_token_ids().end())}));

  response->set_num_device_blocks(num_device_blocks);
  response->set_num_host_blocks(num_host_blocks);
  response->set_block_size(block_size);
  response->set_max_model_len(max_model_len);
  response->set_vocab_size(config->vocab_size);
  response->set_weight_bytes(weight_bytes);
  response->set_communicator(std::string(runtime->communicator->backend()));
  return runtime;
}

grpc::Status WorkerService::Init(grpc::ServerContext*, const internal::InitRequest* request,
                                 internal::InitResponse* response) {
  std::unique_ptr<Runtime> old;
  {
    absl::MutexLock lock(&mu_);
    generation_ = request->generation();
    state_ = internal::HealthResponse::UNINITIALIZED;
    error_.clear();
    tp_rank_ = request->tp_rank();
    tp_size_ = request->tp_size();
    AcquireRuntimeLocked();
    busy_ = true;
    old = std::move(runtime_);
  }
  old.reset();  // free the previous model before loading the next
  PAGODA_LOG(info, "Init generation {}: replica '{}' rank {}/{} model {} ({})",
             request->generation(), request->replica(), request->tp_rank(), request->tp_size(),
             request->model_dir(),
             request->load_format().empty() ? "safetensors" : request->load_format());
  absl::StatusOr<std::unique_ptr<Runtime>> built = Build(*request, response);

  absl::MutexLock lock(&mu_);
  busy_ = false;
  if (generation_ != request->generation()) {
    return grpc::Status(grpc::StatusCode::ABORTED, "superseded by a newer Init");
  }
  if (!built.ok()) {
    const absl::Status status = WithRank(built.status(), request->tp_rank());
    state_ = internal::HealthResponse::FAILED;
    error_ = std::string(status.message());
    PAGODA_LOG(error, "Init failed: {}", error_);
    return ToGrpcStatus(status);
  }
  runtime_ = std::move(*built);
  state_ = internal::HealthResponse::READY;
  if (options_.metrics != nullptr) {
    options_.metrics->SetIdentity(request->replica(), request->tp_rank());
  }
  next_sequence_ = 0;
  PAGODA_LOG(info, "ready: {} KV blocks of {} tokens, {} swap blocks, communicator {}",
             response->num_device_blocks(), response->block_size(), response->num_host_blocks(),
             response->communicator());
  return grpc::Status::OK;
}

grpc::Status WorkerService::Execute(grpc::ServerContext*, const internal::ExecuteRequest* request,
                                    internal::ExecuteResponse* response) {
  // Decoding needs no state: do it before waiting for this plan's turn.
  absl::StatusOr<StepPlan> plan = DecodeStepPlan(request->plan());
  const uint64_t generation = request->generation();
  const uint64_t sequence = request->sequence();
  Runtime* runtime = nullptr;
  int32_t rank = 0;
  {
    absl::MutexLock lock(&mu_);
    rank = tp_rank_;
    if (generation != generation_ || state_ != internal::HealthResponse::READY) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          absl::StrCat("worker rank ", tp_rank_, " is not ready for generation ",
                                       generation, " (generation ", generation_, ", ",
                                       internal::HealthResponse::State_Name(state_),
                                       error_.empty() ? "" : ": ", error_, ")"));
    }
    if (sequence < next_sequence_) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("plan ", sequence, " was already applied"));
    }
    auto turn = [this, generation, sequence]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return generation_ != generation || state_ != internal::HealthResponse::READY ||
             (next_sequence_ == sequence && !busy_);
    };
    if (!mu_.AwaitWithTimeout(absl::Condition(&turn), options_.order_timeout)) {
      state_ = internal::HealthResponse::FAILED;
      error_ = absl::StrCat("plan ", next_sequence_, " never arrived (waited ",
                            absl::FormatDuration(options_.order_timeout), " with plan ", sequence,
                            " queued)");
      return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, error_);
    }
    if (generation_ != generation || state_ != internal::HealthResponse::READY) {
      return grpc::Status(grpc::StatusCode::ABORTED,
                          "the worker was re-initialized or failed while the plan waited");
    }
    busy_ = true;
    runtime = runtime_.get();
  }

  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<StepResult> result =
      plan.ok() ? runtime->steps->Apply(*plan) : absl::StatusOr<StepResult>(plan.status());
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (result.ok() && options_.metrics != nullptr) {
    // Still this call's runtime: busy_ keeps Init and Health away from it.
    int64_t batch_tokens = 0;
    for (const NewSequence& seq : plan->new_sequences) batch_tokens += seq.num_scheduled_tokens;
    for (const CachedSequence& seq : plan->cached_sequences) {
      batch_tokens += seq.num_scheduled_tokens;
    }
    const int64_t used = runtime->steps->num_used_device_blocks();
    options_.metrics->ObserveStep(seconds, batch_tokens, used,
                                  runtime->steps->num_device_blocks() - used);
  }

  {
    absl::MutexLock lock(&mu_);
    busy_ = false;
    ++next_sequence_;
    if (!result.ok()) {
      // The ranks' states may now disagree (or a collective broke): only a new Init helps.
      state_ = internal::HealthResponse::FAILED;
      error_ = absl::StrCat("step ", request->plan().step_id(), ": ", result.status().message());
      PAGODA_LOG(error, "{}", error_);
    }
  }
  if (!result.ok()) return ToGrpcStatus(WithRank(result.status(), rank));
  if (request->want_outputs()) EncodeStepResult(*result, response->mutable_result());
  response->set_step_seconds(seconds);
  return grpc::Status::OK;
}

grpc::Status WorkerService::Health(grpc::ServerContext*, const internal::HealthRequest*,
                                   internal::HealthResponse* response) {
  absl::MutexLock lock(&mu_);
  response->set_state(state_);
  response->set_generation(generation_);
  response->set_tp_rank(tp_rank_);
  response->set_tp_size(tp_size_);
  response->set_next_sequence(next_sequence_);
  response->set_error(error_);
  // The runtime is only read while no step uses it.
  if (runtime_ != nullptr && !busy_) response->set_num_sequences(runtime_->steps->num_sequences());
  return grpc::Status::OK;
}

grpc::Status WorkerService::Shutdown(grpc::ServerContext*, const internal::ShutdownRequest* request,
                                     internal::ShutdownResponse*) {
  std::unique_ptr<Runtime> old;
  {
    absl::MutexLock lock(&mu_);
    ++generation_;  // plans still queued for the old generation give up
    state_ = internal::HealthResponse::UNINITIALIZED;
    AcquireRuntimeLocked();
    old = std::move(runtime_);
  }
  old.reset();
  PAGODA_LOG(info, "shut down by the router{}", request->exit_process() ? "; exiting" : "");
  if (request->exit_process() && request_exit_) request_exit_();
  return grpc::Status::OK;
}

grpc::Status WorkerService::StoreSet(grpc::ServerContext*, const internal::StoreSetRequest* request,
                                     internal::StoreSetResponse*) {
  return ToGrpcStatus(store_.Set(request->key(), request->value()));
}

grpc::Status WorkerService::StoreGet(grpc::ServerContext*, const internal::StoreGetRequest* request,
                                     internal::StoreGetResponse* response) {
  const int64_t wait_ms = std::clamp<int64_t>(request->timeout_ms(), 0, kMaxStoreWaitMs);
  absl::StatusOr<std::string> value = store_.Get(request->key(), absl::Milliseconds(wait_ms));
  if (!value.ok()) return ToGrpcStatus(value.status());
  response->set_value(std::move(*value));
  return grpc::Status::OK;
}

}  // namespace pagoda
