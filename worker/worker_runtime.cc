#include "worker/worker_runtime.h"

#include <malloc.h>

#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/kv_cache_groups.h"
#include "common/logging.h"
#include "common/model_config.h"
#include "common/model_source.h"
#include "common/status_macros.h"
#include "kernels/cuda/device_memory.h"
#include "worker/cuda_graph_plan.h"
#include "worker/device_kv_budget.h"
#include "worker/device_selection.h"
#include "worker/draft_model.h"
#include "worker/gloo_communicator.h"
#include "worker/in_process_executor.h"
#include "worker/model_runner.h"
#include "worker/model_weights.h"
#include "worker/nccl_communicator.h"
#include "worker/tensor_parallel.h"

namespace pagoda {
namespace {

// glibc keeps what was just freed (the weights, the KV cache, the threads' buffers) in its heaps:
// a large free raises its mmap threshold, so the next model's buffers come from a heap too. Give
// the free pages back, or each re-initialisation leaves the worker larger (the soak's spared
// worker grew 37 -> 42 MiB over 20 of them). A sanitizer replaces malloc, and glibc's trim then
// walks arenas its own allocator never set up (ThreadSanitizer: SEGV in mtrim), so those builds
// skip it.
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define PAGODA_MALLOC_REPLACED
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || defined(PAGODA_MALLOC_REPLACED)
constexpr bool kMallocReplaced = true;
#else
constexpr bool kMallocReplaced = false;
#endif

void ReturnFreedHeapPages() {
  if constexpr (!kMallocReplaced) malloc_trim(0);
}

constexpr absl::Duration kDefaultCommTimeout = absl::Seconds(30);

absl::Status WithRank(const absl::Status& status, int32_t rank) {
  return absl::Status(status.code(), absl::StrCat("worker rank ", rank, ": ", status.message()));
}

// The ranks' flags side by side: all[r] <- rank r's `mine`. NCCL's collectives take device
// memory, so on CUDA the values go through a small device buffer.
absl::Status GatherFlags(Communicator& comm, float mine, std::vector<float>& all) {
  all.assign(static_cast<size_t>(comm.size()), 0.0f);
  if (comm.backend() != "nccl") return comm.AllGather(&mine, 1, all.data());
  constexpr int64_t kFloat = sizeof(float);
  ASSIGN_OR_RETURN(std::shared_ptr<void> bytes,
                   kernels::cuda::AllocateZeroed((1 + comm.size()) * kFloat));
  float* device = static_cast<float*>(bytes.get());
  RETURN_IF_ERROR(kernels::cuda::CopyBytes(device, &mine, kFloat));
  RETURN_IF_ERROR(comm.AllGather(device, 1, device + 1));
  return kernels::cuda::CopyBytes(all.data(), device + 1, comm.size() * kFloat);
}

// The ranks of a sparse model's replica must shard its experts alike (--enable-expert-parallel
// is a per-process flag): the all-reduce would otherwise sum the parts of mismatched shards.
absl::Status CheckExpertShardsAgree(Communicator& comm, bool expert_parallel) {
  std::vector<float> all;
  RETURN_IF_ERROR(GatherFlags(comm, expert_parallel ? 1.0f : 0.0f, all));
  for (int32_t rank = 0; rank < comm.size(); ++rank) {
    if ((all[static_cast<size_t>(rank)] != 0.0f) == expert_parallel) continue;
    const auto with = [](bool on) { return on ? "with" : "without"; };
    return absl::FailedPreconditionError(
        absl::StrCat("rank ", rank, " was started ", with(!expert_parallel),
                     " --enable-expert-parallel and rank ", comm.rank(), " ", with(expert_parallel),
                     " it: start every pagoda-worker of a replica with the same model flags"));
  }
  return absl::OkStatus();
}

absl::Status ValidateInit(const WorkerInitConfig& c) {
  if (c.tp_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat("tp_size must be >= 1, got ", c.tp_size));
  }
  if (c.tp_rank < 0 || c.tp_rank >= c.tp_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("tp_rank must be in [0, ", c.tp_size, "), got ", c.tp_rank));
  }
  if (c.block_size <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("block_size must be positive, got ", c.block_size));
  }
  if (c.num_device_blocks < 0 || c.kv_cache_memory_bytes < 0 || c.swap_space_bytes < 0 ||
      c.max_model_len < 0 || c.timeout_ms < 0) {
    return absl::InvalidArgumentError(
        "num_device_blocks, kv_cache_memory_bytes, swap_space_bytes, max_model_len and "
        "timeout_ms must not be negative");
  }
  if (c.num_device_blocks == 0 && c.kv_cache_memory_bytes == 0) {
    return absl::InvalidArgumentError(
        "either num_device_blocks or kv_cache_memory_bytes must be set");
  }
  if (c.tp_size > 1 && c.rank0_address.empty()) {
    return absl::InvalidArgumentError("rank0_address is required when tp_size > 1");
  }
  if (c.load_format != "" && c.load_format != "safetensors" && c.load_format != "dummy") {
    return absl::InvalidArgumentError(
        absl::StrCat("load_format must be 'safetensors' or 'dummy', got '", c.load_format, "'"));
  }
  return absl::OkStatus();
}

// Tokens the plan computes in its first pass (the batch-size metric).
int64_t BatchTokens(const StepPlan& plan) {
  int64_t tokens = 0;
  for (const NewSequence& seq : plan.new_sequences) tokens += seq.num_scheduled_tokens;
  for (const CachedSequence& seq : plan.cached_sequences) tokens += seq.num_scheduled_tokens;
  return tokens;
}

}  // namespace

std::string_view WorkerStateName(WorkerState state) {
  switch (state) {
    case WorkerState::kUninitialized:
      return "UNINITIALIZED";
    case WorkerState::kReady:
      return "READY";
    case WorkerState::kFailed:
      return "FAILED";
  }
  return "STATE_UNSPECIFIED";
}

WorkerRuntime::WorkerRuntime(WorkerRuntimeOptions options) : options_(std::move(options)) {}

WorkerRuntime::~WorkerRuntime() {
  absl::MutexLock lock(&mu_);
  AcquireBuiltLocked();
  built_.reset();
}

void WorkerRuntime::AcquireBuiltLocked() {
  mu_.Await(absl::Condition(
      +[](bool* busy) { return !*busy; }, &busy_));
}

absl::StatusOr<std::unique_ptr<Communicator>> WorkerRuntime::JoinCommunicator(
    const WorkerInitConfig& c, const std::string& backend) {
  if (backend == "single") return CreateSingleCommunicator();
  const absl::Duration timeout =
      c.timeout_ms > 0 ? absl::Milliseconds(c.timeout_ms) : kDefaultCommTimeout;
  std::unique_ptr<RendezvousStore> remote;
  RendezvousStore* store = &store_;
  // Rank 0 serves the replica's store: what earlier generations met through is done with.
  if (c.tp_rank == 0) store_.ForgetGenerationsBefore(c.replica, c.generation);
  if (c.tp_rank != 0) {
    if (!options_.connect_store) {
      return absl::FailedPreconditionError(
          "this worker has no way to reach rank 0's bootstrap store");
    }
    remote = options_.connect_store(c.rank0_address, timeout);
    store = remote.get();
  }
  // Gloo's pair addresses or NCCL's unique id, under this Init's generation.
  const std::string prefix = absl::StrCat(c.replica, "/g", c.generation, "/");
  if (backend == "nccl") {
    return CreateNcclCommunicator({.rank = c.tp_rank,
                                   .size = c.tp_size,
                                   .device = options_.cuda_device,
                                   .prefix = prefix,
                                   .timeout = timeout},
                                  store);
  }
  return CreateGlooCommunicator({.rank = c.tp_rank,
                                 .size = c.tp_size,
                                 .hostname = options_.comm_host,
                                 .prefix = prefix,
                                 .timeout = timeout},
                                store);
}

absl::StatusOr<std::unique_ptr<WorkerRuntime::Built>> WorkerRuntime::Build(
    const WorkerInitConfig& c, WorkerInitResult& result) {
  RETURN_IF_ERROR(ValidateInit(c));
  ASSIGN_OR_RETURN(const std::string backend,
                   SelectCommunicator(c.communicator, options_.device, c.tp_size));
  if (options_.device == Device::kCuda) {
    RETURN_IF_ERROR(kernels::cuda::SetDevice(options_.cuda_device));
  }
  const std::string dir = options_.model_dir.empty() ? c.model_dir : options_.model_dir;
  if (dir.empty()) return absl::InvalidArgumentError("model_dir is empty");
  absl::StatusOr<ModelSource> model = ModelSource::Open(dir);
  if (!model.ok()) {
    return absl::Status(model.status().code(), absl::StrCat("cannot load the model config from ",
                                                            dir, ": ", model.status().message()));
  }
  const ModelConfig* config = &model->config();
  const TensorParallelShard shard{
      .rank = c.tp_rank, .size = c.tp_size, .expert_parallel = options_.expert_parallel};
  RETURN_IF_ERROR(ValidateTensorParallel(*config, shard));

  const WeightLoadOptions load_options{.dtype = options_.weight_dtype};
  auto weights = c.load_format == "dummy"
                     ? DummyModelWeights(*config, c.dummy_seed, shard, load_options)
                     : LoadModelWeights(*model, shard, load_options);
  if (!weights.ok()) {
    return absl::Status(weights.status().code(), absl::StrCat("cannot load the model from ", dir,
                                                              ": ", weights.status().message()));
  }
  const DType kv_dtype = options_.kv_cache_dtype;

  auto built = std::make_unique<Built>();
  ASSIGN_OR_RETURN(built->communicator, JoinCommunicator(c, backend));
  if (c.tp_size > 1 && config->num_experts > 0) {
    RETURN_IF_ERROR(CheckExpertShardsAgree(*built->communicator, options_.expert_parallel));
  }
  if (options_.metrics != nullptr) {
    built->communicator = std::make_unique<TimedCommunicator>(std::move(built->communicator),
                                                              options_.metrics, options_.clock);
  }

  // A draft model's KV blocks share the target's block ids: each block holds both.
  std::optional<ModelSource> draft_source;
  const std::string draft_dir = c.draft_model_dir.empty() || options_.draft_model_dir.empty()
                                    ? c.draft_model_dir
                                    : options_.draft_model_dir;
  if (!draft_dir.empty()) {
    absl::StatusOr<ModelSource> opened = ModelSource::Open(draft_dir);
    if (!opened.ok()) {
      return absl::Status(opened.status().code(),
                          absl::StrCat("cannot open the draft model: ", opened.status().message()));
    }
    draft_source.emplace(*std::move(opened));
  }
  const ModelConfig* draft_config = draft_source.has_value() ? &draft_source->config() : nullptr;
  const int64_t block_size = c.block_size;
  const int64_t max_model_len = c.max_model_len > 0
                                    ? std::min(c.max_model_len, config->max_position_embeddings)
                                    : config->max_position_embeddings;
  // A CUDA rank sizes its cache from --gpu-memory-utilization (kv_cache_memory_bytes is the CPU
  // budget), after a step of the engine's largest size over a small cache has run.
  const bool on_cuda = options_.device == Device::kCuda;
  const bool size_on_device = on_cuda && c.num_device_blocks == 0;
  if (size_on_device && draft_source.has_value()) {
    return absl::UnimplementedError(
        "a CUDA worker sizes its KV cache from --gpu-memory-utilization without a draft model; "
        "with one, give the router --num-gpu-blocks-override");
  }
  const LargestStep profile =
      LargestStepFor(c.max_num_batched_tokens, c.max_num_seqs, max_model_len);
  int64_t num_device_blocks = c.num_device_blocks > 0 ? c.num_device_blocks
                              : size_on_device        ? ProfileBlocks(profile, block_size)
                                                      : InProcessExecutor::NumBlocksForBudget(
                                                            *config, block_size, c.kv_cache_memory_bytes,
                                                            shard, kv_dtype, draft_config);
  if (num_device_blocks <= 0) {
    return absl::ResourceExhaustedError(
        absl::StrCat("kv_cache_memory_bytes ", c.kv_cache_memory_bytes, " holds no KV block of ",
                     block_size, " tokens for this model"));
  }
  const int64_t num_host_blocks =
      c.swap_space_bytes > 0
          ? InProcessExecutor::NumBlocksForBudget(*config, block_size, c.swap_space_bytes, shard,
                                                  kv_dtype, draft_config)
          : 0;
  const ModelRunnerOptions runner_options{
      .num_blocks = num_device_blocks,
      .block_size = block_size,
      .kv_cache_dtype = kv_dtype,
      .max_positions = max_model_len,
      .shard = shard,
      .communicator = built->communicator.get(),
      .kv_groups = KvCacheGroupsFor(*config, /*with_draft=*/draft_source.has_value()),
      .device = options_.device};
  ASSIGN_OR_RETURN(std::unique_ptr<ModelRunner> runner,
                   ModelRunner::Create(*config, std::move(*weights), runner_options));
  // CUDA graphs are captured once the activations have their peak (after the largest step when
  // the cache is sized here), so that their memory counts in what the budget leaves out;
  // ReallocateKvCache captures them again over the final cache.
  const bool capture_graphs = on_cuda && !options_.enforce_eager;
  if (size_on_device) {
    RETURN_IF_ERROR(RunLargestStep(*runner, profile));
    if (capture_graphs) {
      RETURN_IF_ERROR(runner->CaptureCudaGraphs(DefaultCudaGraphSizes(c.max_num_seqs)));
    }
    ASSIGN_OR_RETURN(const kernels::cuda::DeviceMemoryInfo memory, kernels::cuda::MemoryInfo());
    const int64_t budget =
        DeviceKvBudget(memory, options_.gpu_memory_utilization, runner->kv_cache().num_bytes());
    num_device_blocks =
        InProcessExecutor::NumBlocksForBudget(*config, block_size, budget, shard, kv_dtype);
    PAGODA_LOG(info,
               "device memory after the weights and a step of {} x {} tokens: {:.2f} of {:.2f} "
               "GiB free; KV cache budget {:.2f} GiB (--gpu-memory-utilization {}): {} blocks",
               profile.num_seqs, profile.tokens_per_seq,
               static_cast<double>(memory.free_bytes) / (1 << 30),
               static_cast<double>(memory.total_bytes) / (1 << 30),
               static_cast<double>(budget) / (1 << 30), options_.gpu_memory_utilization,
               num_device_blocks);
    if (num_device_blocks <= 0) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "--gpu-memory-utilization ", options_.gpu_memory_utilization, " of ", memory.total_bytes,
          " bytes leaves no room for a KV block once the weights and a step "
          "of ",
          profile.num_seqs * profile.tokens_per_seq, " tokens are on the device (",
          memory.free_bytes, " bytes free)"));
    }
    RETURN_IF_ERROR(runner->ReallocateKvCache(num_device_blocks));
  } else if (capture_graphs) {
    RETURN_IF_ERROR(runner->CaptureCudaGraphs(DefaultCudaGraphSizes(c.max_num_seqs)));
  }
  int64_t runner_kv_bytes = runner->kv_cache().num_bytes();
  // After ModelRunner::Create: with the packed forms the CPU GEMMs read (cpu_weight_placement.h).
  int64_t all_weight_bytes = runner->weights().num_bytes();
  std::unique_ptr<DraftModel> draft;
  if (draft_source.has_value()) {
    ASSIGN_OR_RETURN(draft, LoadDraftModel({.path = draft_dir,
                                            .load_format = c.load_format,
                                            .dummy_seed = c.dummy_seed + 1,
                                            .dtype = options_.weight_dtype},
                                           dir, *config, runner_options, num_host_blocks));
    runner_kv_bytes += draft->kv_cache_bytes();
    all_weight_bytes += draft->weight_bytes();
  }
  ASSIGN_OR_RETURN(
      built->steps,
      StepRunner::Create(std::move(runner),
                         {.num_host_blocks = num_host_blocks,
                          .extra_eos_token_ids = c.extra_eos_token_ids,
                          // Structured output needs the vocabulary: the model's own tokenizer,
                          // read once when the first constrained sequence arrives.
                          .load_tokenizer = [dir] { return LoadTokenizerFrom(dir); }},
                         std::move(draft)));

  result = {.num_device_blocks = num_device_blocks,
            .num_host_blocks = num_host_blocks,
            .block_size = block_size,
            .max_model_len = max_model_len,
            .vocab_size = config->vocab_size,
            .sliding_window = built->steps->sliding_window(),
            .kv_group_windows = built->steps->kv_group_windows(),
            .weight_bytes = all_weight_bytes,
            .kv_cache_bytes = runner_kv_bytes,
            .communicator = std::string(built->communicator->backend())};
  return built;
}

absl::StatusOr<WorkerInitResult> WorkerRuntime::Init(const WorkerInitConfig& config) {
  std::unique_ptr<Built> old;
  {
    absl::MutexLock lock(&mu_);
    if (draining_) {
      return absl::UnavailableError(absl::StrCat(
          "worker rank ", tp_rank_, " is draining (it received SIGTERM) and takes no new Init"));
    }
    generation_ = config.generation;
    state_ = WorkerState::kUninitialized;
    error_.clear();
    tp_rank_ = config.tp_rank;
    tp_size_ = config.tp_size;
    AcquireBuiltLocked();
    busy_ = true;
    old = std::move(built_);
  }
  old.reset();  // free the previous model before loading the next
  ReturnFreedHeapPages();
  const std::string& model = options_.model_dir.empty() ? config.model_dir : options_.model_dir;
  PAGODA_LOG(info, "Init generation {}: replica '{}' rank {}/{} model {} ({}{})", config.generation,
             config.replica, config.tp_rank, config.tp_size, model,
             config.load_format == "dummy" ? "dummy weights"
             : IsGgufPath(model)           ? "gguf"
                                           : "safetensors",
             options_.expert_parallel ? ", whole experts per rank" : "");
  WorkerInitResult result;
  absl::StatusOr<std::unique_ptr<Built>> built =
      compute_.Run([&] { return Build(config, result); });

  absl::MutexLock lock(&mu_);
  busy_ = false;
  if (generation_ != config.generation) return absl::AbortedError("superseded by a newer Init");
  if (!built.ok()) {
    const absl::Status status = WithRank(built.status(), config.tp_rank);
    state_ = WorkerState::kFailed;
    error_ = std::string(status.message());
    PAGODA_LOG(error, "Init failed: {}", error_);
    return status;
  }
  built_ = std::move(*built);
  state_ = WorkerState::kReady;
  if (options_.metrics != nullptr) {
    options_.metrics->SetIdentity(config.replica, config.tp_rank);
    options_.metrics->SetModelBytes(result.weight_bytes, result.kv_cache_bytes);
  }
  next_sequence_ = 0;
  PAGODA_LOG(info,
             "ready: weights {:.1f} MiB, KV cache {:.1f} MiB ({} blocks of {} tokens, {}), {} swap "
             "blocks, communicator {}",
             static_cast<double>(result.weight_bytes) / (1 << 20),
             static_cast<double>(result.kv_cache_bytes) / (1 << 20), result.num_device_blocks,
             result.block_size, DTypeName(options_.kv_cache_dtype), result.num_host_blocks,
             result.communicator);
  return result;
}

absl::StatusOr<AppliedStep> WorkerRuntime::Execute(const PlanTicket& ticket,
                                                   const absl::StatusOr<StepPlan>& plan) {
  const uint64_t generation = ticket.generation;
  const uint64_t sequence = ticket.sequence;
  Built* built = nullptr;
  int32_t rank = 0;
  {
    absl::MutexLock lock(&mu_);
    rank = tp_rank_;
    if (generation != generation_ || state_ != WorkerState::kReady) {
      return absl::FailedPreconditionError(
          absl::StrCat("worker rank ", tp_rank_, " is not ready for generation ", generation,
                       " (generation ", generation_, ", ", std::string(WorkerStateName(state_)),
                       error_.empty() ? "" : ": ", error_, ")"));
    }
    if (sequence < next_sequence_) {
      return absl::InvalidArgumentError(absl::StrCat("plan ", sequence, " was already applied"));
    }
    auto turn = [this, generation, sequence]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return generation_ != generation || state_ != WorkerState::kReady ||
             (next_sequence_ == sequence && !busy_);
    };
    if (!options_.clock->AwaitWithTimeout(mu_, absl::Condition(&turn), options_.order_timeout)) {
      state_ = WorkerState::kFailed;
      error_ = absl::StrCat("plan ", next_sequence_, " never arrived (waited ",
                            absl::FormatDuration(options_.order_timeout), " with plan ", sequence,
                            " queued)");
      return absl::DeadlineExceededError(error_);
    }
    if (generation_ != generation || state_ != WorkerState::kReady) {
      return absl::AbortedError("the worker was re-initialized or failed while the plan waited");
    }
    busy_ = true;
    built = built_.get();
  }

  const absl::Time start = options_.clock->Now();
  absl::StatusOr<StepResult> result = compute_.Run([&]() -> absl::StatusOr<StepResult> {
    if (!plan.ok()) return plan.status();
    // The CUDA device is per thread; Build set it on this one already (setting it is cheap).
    if (options_.device == Device::kCuda) {
      RETURN_IF_ERROR(kernels::cuda::SetDevice(options_.cuda_device));
    }
    return built->steps->Apply(*plan);
  });
  const double seconds = std::max(0.0, absl::ToDoubleSeconds(options_.clock->Now() - start));
  if (result.ok() && options_.metrics != nullptr) {
    // Still this call's state: busy_ keeps Init and Health away from it.
    const int64_t used = built->steps->num_used_device_blocks();
    options_.metrics->ObserveStep(seconds, BatchTokens(*plan), used,
                                  built->steps->num_device_blocks() - used);
  }

  {
    absl::MutexLock lock(&mu_);
    busy_ = false;
    ++next_sequence_;
    last_step_end_ = options_.clock->Now();
    if (!result.ok()) {
      // The ranks' states may now disagree (or a collective broke): only a new Init helps.
      state_ = WorkerState::kFailed;
      error_ = absl::StrCat("step ", ticket.step_id, ": ", result.status().message());
      PAGODA_LOG(error, "{}", error_);
    }
  }
  if (!result.ok()) return WithRank(result.status(), rank);
  return AppliedStep{.result = std::move(*result), .step_seconds = seconds};
}

WorkerHealth WorkerRuntime::Health() const {
  absl::MutexLock lock(&mu_);
  WorkerHealth health{.state = state_,
                      .generation = generation_,
                      .tp_rank = tp_rank_,
                      .tp_size = tp_size_,
                      .next_sequence = next_sequence_,
                      .error = error_,
                      .draining = draining_,
                      .step_in_progress = busy_ && state_ == WorkerState::kReady,
                      .last_step_end = last_step_end_};
  // The built state is only read while no step uses it.
  if (built_ != nullptr && !busy_) health.num_sequences = built_->steps->num_sequences();
  return health;
}

void WorkerRuntime::StartDraining() {
  absl::MutexLock lock(&mu_);
  draining_ = true;
}

void WorkerRuntime::Shutdown() {
  std::unique_ptr<Built> old;
  {
    absl::MutexLock lock(&mu_);
    ++generation_;  // plans still queued for the old generation give up
    state_ = WorkerState::kUninitialized;
    AcquireBuiltLocked();
    old = std::move(built_);
  }
}

}  // namespace pagoda
