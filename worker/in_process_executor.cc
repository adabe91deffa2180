#include "worker/in_process_executor.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/kv_cache_groups.h"
#include "common/status_macros.h"
#include "kernels/cpu_threads.h"
#include "worker/cuda_graph_plan.h"
#include "worker/kv_cache.h"
#include "worker/model_runner.h"

namespace pagoda {

absl::StatusOr<std::unique_ptr<InProcessExecutor>> InProcessExecutor::Create(
    const ModelConfig& config, ModelWeights weights, const InProcessExecutorOptions& options) {
  if (options.num_device_blocks <= 0 || options.block_size <= 0 || options.num_host_blocks < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "executor needs num_device_blocks > 0, block_size > 0 and "
        "num_host_blocks >= 0; got ",
        options.num_device_blocks, ", ", options.block_size, " and ", options.num_host_blocks));
  }
  const int64_t max_model_len =
      options.max_model_len > 0 ? std::min(options.max_model_len, config.max_position_embeddings)
                                : config.max_position_embeddings;
  KvCacheGroups groups = KvCacheGroupsFor(config, /*with_draft=*/!options.draft.path.empty());
  ASSIGN_OR_RETURN(std::unique_ptr<ModelRunner> runner,
                   ModelRunner::Create(config, std::move(weights),
                                       {.num_blocks = options.num_device_blocks,
                                        .block_size = options.block_size,
                                        .kv_cache_dtype = options.kv_cache_dtype,
                                        .max_positions = max_model_len,
                                        .kv_groups = groups,
                                        .device = options.device}));
  if (options.device == Device::kCuda && !options.enforce_eager) {
    RETURN_IF_ERROR(runner->CaptureCudaGraphs(DefaultCudaGraphSizes(options.max_num_seqs)));
  }
  std::unique_ptr<DraftModel> draft;
  if (!options.draft.path.empty()) {
    ASSIGN_OR_RETURN(draft, LoadDraftModel(options.draft, options.model_path, config,
                                           {.num_blocks = options.num_device_blocks,
                                            .block_size = options.block_size,
                                            .kv_cache_dtype = options.kv_cache_dtype,
                                            .max_positions = max_model_len,
                                            .device = options.device},
                                           options.num_host_blocks));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<StepRunner> steps,
                   StepRunner::Create(std::move(runner),
                                      {.num_host_blocks = options.num_host_blocks,
                                       .extra_eos_token_ids = options.extra_eos_token_ids,
                                       .sampler = options.sampler,
                                       .load_tokenizer = options.load_tokenizer},
                                      std::move(draft)));
  const ExecutorInfo info{.num_device_blocks = options.num_device_blocks,
                          .num_host_blocks = options.num_host_blocks,
                          .block_size = options.block_size,
                          .max_model_len = max_model_len,
                          .vocab_size = config.vocab_size,
                          .sliding_window = steps->sliding_window(),
                          .kv_group_windows = steps->kv_group_windows()};
  // This thread loaded the model; the executor's thread computes from here on, and a second
  // OpenMP team would stop both from spinning between parallel regions (kernels/cpu_threads.h).
  kernels::ReleaseCpuThreads();
  return std::unique_ptr<InProcessExecutor>(new InProcessExecutor(info, std::move(steps)));
}

int64_t InProcessExecutor::NumBlocksForBudget(const ModelConfig& config, int64_t block_size,
                                              int64_t budget_bytes,
                                              const TensorParallelShard& shard,
                                              DType kv_cache_dtype, const ModelConfig* draft) {
  int64_t bytes_per_block = KvBytesPerBlock(config, block_size, shard, kv_cache_dtype);
  // With KV cache groups a block holds K layers' keys and values, not every layer's.
  const KvCacheGroups groups = KvCacheGroupsFor(config, /*with_draft=*/draft != nullptr);
  if (groups.num_groups() > 0) {
    bytes_per_block = bytes_per_block / config.num_hidden_layers * groups.num_slots;
  }
  if (draft != nullptr && bytes_per_block > 0) {
    const int64_t draft_bytes = KvBytesPerBlock(*draft, block_size, shard, kv_cache_dtype);
    bytes_per_block = draft_bytes > 0 ? bytes_per_block + draft_bytes : 0;
  }
  if (bytes_per_block <= 0 || budget_bytes <= 0) return 0;
  return budget_bytes / bytes_per_block;
}

InProcessExecutor::InProcessExecutor(const ExecutorInfo& info, std::unique_ptr<StepRunner> steps)
    : info_(info), steps_(std::move(steps)), thread_([this] { WorkerLoop(); }) {}

InProcessExecutor::~InProcessExecutor() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

std::future<absl::StatusOr<StepResult>> InProcessExecutor::Submit(StepPlan plan) {
  Task task{.plan = std::move(plan)};
  std::future<absl::StatusOr<StepResult>> future = task.promise.get_future();
  absl::MutexLock lock(&mu_);
  queue_.push_back(std::move(task));
  return future;
}

void InProcessExecutor::WorkerLoop() {
  while (true) {
    Task task;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &InProcessExecutor::HasWorkOrStopping));
      if (stopping_) {
        for (Task& left : queue_) {
          left.promise.set_value(absl::CancelledError(
              absl::StrCat("step ", left.plan.step_id, " was not run: the executor shut down")));
        }
        queue_.clear();
        return;
      }
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task.promise.set_value(steps_->Apply(task.plan));
  }
}

}  // namespace pagoda
