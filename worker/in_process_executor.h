// InProcessExecutor: the Executor of `pagoda generate` — the worker runtime linked into the
// engine's process, no network. It owns the model (ModelRunner + device KV cache), a host swap
// pool and the per-sequence state (all inside a StepRunner), and one worker thread that applies
// submitted plans strictly in order, so the engine can plan step n+1 and process step n's
// outputs while step n+1 runs (asynchronous output processing). The thread that calls Create
// (and loaded the weights) hands the computing to that thread: Create releases its OpenMP team
// (kernels/cpu_threads.h).
//
//   ASSIGN_OR_RETURN(auto executor,
//                    InProcessExecutor::Create(config, std::move(weights),
//                                              {.num_device_blocks = 512, .block_size = 16}));
//   std::future<absl::StatusOr<StepResult>> pending = executor->Submit(std::move(plan));
//   ASSIGN_OR_RETURN(StepResult result, pending.get());
#pragma once

#include <cstdint>
#include <deque>
#include <future>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/model_config.h"
#include "common/step/executor.h"
#include "common/step/step.h"
#include "worker/draft_model.h"
#include "worker/model_weights.h"
#include "worker/sampler.h"
#include "worker/step_runner.h"
#include "worker/tensor_parallel.h"

namespace pagoda {

struct InProcessExecutorOptions {
  int64_t num_device_blocks = 0;       // KV cache blocks in (device) memory
  int64_t num_host_blocks = 0;         // swap space in host memory; 0 disables swapping
  int64_t block_size = 16;             // tokens per block
  DType kv_cache_dtype = DType::kF32;  // kF32 or kBF16
  /// Positions the model serves (--max-model-len), capped at config.max_position_embeddings; 0:
  /// the config's. It sizes the RoPE table and picks LongRoPE's factors (common/rope_scaling.h),
  /// as the worker runtime's max_model_len does.
  int64_t max_model_len = 0;
  /// End-of-sequence ids besides config.eos_token_ids (e.g. the tokenizer's).
  std::vector<int32_t> extra_eos_token_ids;
  SamplerOptions sampler;
  /// Structured output (StepRunnerOptions::load_tokenizer); null: constraints are refused.
  TokenizerLoader load_tokenizer;
  /// Speculative decoding with a draft model (when draft.path is set): loaded beside the model,
  /// with a KV cache of the same blocks (worker/draft_model.h).
  DraftModelOptions draft;
  /// The model's path, against whose tokenizer the draft's is compared ("": by size only).
  std::string model_path;
  /// Where the model (and the draft) run: SelectDevice's answer to --device. On CUDA the
  /// executor's thread uses the current device (ordinal 0 of those CUDA_VISIBLE_DEVICES shows),
  /// and num_device_blocks sizes the cache as on the CPU.
  Device device = Device::kCpu;
  /// CUDA: every step eager (--enforce-eager); otherwise decode batches of up to
  /// min(max_num_seqs, 256) sequences (max_num_seqs 0: 256) replay CUDA graphs captured here
  /// (ModelRunner::CaptureCudaGraphs). No effect on the CPU.
  bool enforce_eager = false;
  int64_t max_num_seqs = 0;
};

class InProcessExecutor final : public Executor {
 public:
  static absl::StatusOr<std::unique_ptr<InProcessExecutor>> Create(
      const ModelConfig& config, ModelWeights weights, const InProcessExecutorOptions& options);

  /// How many KV blocks of `block_size` tokens fit in `budget_bytes` (keys and values of every
  /// layer, in `kv_cache_dtype`; of K layers for a model with KV cache groups, KvCacheGroupsFor)
  /// on one rank of `shard`, which stores only its KV heads; 0 when not even one does or the
  /// shard is invalid for the model. With a `draft` model each block also holds the draft's keys
  /// and values.
  static int64_t NumBlocksForBudget(const ModelConfig& config, int64_t block_size,
                                    int64_t budget_bytes, const TensorParallelShard& shard = {},
                                    DType kv_cache_dtype = DType::kF32,
                                    const ModelConfig* draft = nullptr);

  /// Finishes the step in progress, fails the queued ones with Cancelled, joins the thread.
  ~InProcessExecutor() override;

  const ExecutorInfo& info() const override { return info_; }

  std::future<absl::StatusOr<StepResult>> Submit(StepPlan plan) override;

 private:
  struct Task {
    StepPlan plan;
    std::promise<absl::StatusOr<StepResult>> promise;
  };

  InProcessExecutor(const ExecutorInfo& info, std::unique_ptr<StepRunner> steps);

  void WorkerLoop();
  bool HasWorkOrStopping() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopping_ || !queue_.empty();
  }

  const ExecutorInfo info_;
  std::unique_ptr<StepRunner> steps_;  // touched only by thread_

  absl::Mutex mu_;
  std::deque<Task> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  std::thread thread_;  // last member: starts after everything it uses is built
};

}  // namespace pagoda
