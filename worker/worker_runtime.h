// WorkerRuntime: one tensor-parallel rank of a replica, without the network — what a
// pagoda-worker process is behind its gRPC service (worker/worker_service.h, a thin adapter).
// Init builds this rank's model shard, communicator (Gloo on the CPU) and KV cache from a
// WorkerInitConfig; Execute applies StepPlans (common/step/step.h) with a StepRunner strictly in
// the order the router numbered them; Health reports what the router's failure detection reads.
//
// Generations: every Init carries a router-chosen generation; a plan of an older one is refused
// (FailedPrecondition), so a plan from before a re-initialization never runs on the new state.
// A step that fails for any reason (an invalid plan included: the ranks' plans no longer agree)
// leaves the runtime FAILED, refusing steps until the next Init.
//
// Rank 0 keeps the bootstrap store the other ranks meet through while they join the
// communicator (bootstrap_store(), which the service serves); a rank > 0 reaches it through
// `connect_store` (the service's GrpcRendezvousStore, or a store in this process in tests).
//
// Thread-safe: Init, Execute, Health and Shutdown may be called from any threads (the service's
// RPC threads); Execute calls wait for their turn.
//
//   WorkerRuntime runtime({.comm_host = "10.0.0.7", .connect_store = ConnectOverGrpc});
//   ASSIGN_OR_RETURN(WorkerInitResult init, runtime.Init({.generation = 7, .model_dir = dir}));
//   ASSIGN_OR_RETURN(AppliedStep step, runtime.Execute({.generation = 7, .sequence = 0}, plan));
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/dtype.h"
#include "common/step/step.h"
#include "kernels/device.h"
#include "worker/communicator.h"
#include "worker/compute_thread.h"
#include "worker/rendezvous_store.h"
#include "worker/step_runner.h"
#include "worker/worker_metrics.h"

namespace pagoda {

/// Opens the bootstrap store of rank 0 at `rank0_address` (host:port of its Worker service);
/// its calls retry for up to `timeout` while rank 0 is not reachable yet.
using ConnectRendezvousStore = std::function<std::unique_ptr<RendezvousStore>(
    const std::string& rank0_address, absl::Duration timeout)>;

struct WorkerRuntimeOptions {
  /// The address this rank's communicator listens on, the one its peers reach (its pod IP or
  /// DNS name on a cluster).
  std::string comm_host = "127.0.0.1";
  /// When set, replaces the model Init names (the model's path on this host differs from the
  /// router's): a directory or a .gguf file.
  std::string model_dir;
  /// The same for the draft model of speculative decoding, used only when Init names one (the
  /// router's `"model"` path differs on this host).
  std::string draft_model_dir;
  /// Where the model runs (--device, resolved by SelectDevice: worker/device_selection.h); a
  /// CUDA worker's ranks meet over NCCL, a CPU worker's over Gloo.
  Device device = Device::kCpu;
  /// CUDA: the device ordinal this rank uses (one GPU per rank), and the share of its memory
  /// the rank may fill (--gpu-memory-utilization).
  int32_t cuda_device = 0;
  double gpu_memory_utilization = 0.9;
  /// CUDA: every step eager (--enforce-eager); otherwise decode batches of up to
  /// min(max_num_seqs, 256) sequences replay CUDA graphs captured at Init
  /// (ModelRunner::CaptureCudaGraphs, DefaultCudaGraphSizes). No effect on the CPU.
  bool enforce_eager = false;
  /// The type safetensors and dummy weights are kept in (--dtype); nullopt: auto.
  std::optional<DType> weight_dtype;
  /// The KV cache's type (--kv-cache-dtype): kF32 or kBF16.
  DType kv_cache_dtype = DType::kF32;
  /// Whole experts per rank (--enable-expert-parallel, TensorParallelShard::expert_parallel);
  /// every rank of a replica must be started alike.
  bool expert_parallel = false;
  /// How long an Execute waits for the plans numbered before it.
  absl::Duration order_timeout = absl::Seconds(60);
  /// Step, KV and collective metrics (borrowed; must outlive the runtime); null: none.
  WorkerMetrics* metrics = nullptr;
  /// How a rank > 0 reaches rank 0's bootstrap store; required for tp_size > 1 on rank > 0.
  ConnectRendezvousStore connect_store;
  /// Times the order wait and the steps' metrics (borrowed).
  const Clock* clock = Clock::Real();
};

/// What an Init asks for: the fields of pagoda.internal.InitRequest (whose comments hold).
struct WorkerInitConfig {
  uint64_t generation = 0;
  std::string replica;      // for logs and metrics
  std::string model_dir;    // a directory or a .gguf file; options.model_dir overrides it
  std::string load_format;  // "" or "safetensors", or "dummy" (random weights)
  uint64_t dummy_seed = 0;  // load_format "dummy"
  int32_t tp_rank = 0;
  int32_t tp_size = 1;
  std::string rank0_address;           // host:port of rank 0's Worker service, when tp_size > 1
  std::string communicator;            // "" or "auto", "gloo", "nccl"
  int32_t block_size = 16;             // tokens per KV block
  int64_t num_device_blocks = 0;       // > 0: exactly this many KV blocks
  int64_t kv_cache_memory_bytes = 0;   // when num_device_blocks == 0: this rank's KV budget
  int64_t swap_space_bytes = 0;        // host swap pool
  int64_t max_model_len = 0;           // 0: the model's
  int64_t timeout_ms = 0;              // communicator rendezvous and collectives; 0: 30 s
  std::string draft_model_dir;         // the draft model; "" for none; options may override it
  int64_t max_num_batched_tokens = 0;  // the engine's largest step; 0: unknown
  int64_t max_num_seqs = 0;
  std::vector<int32_t> extra_eos_token_ids;
};

/// What Init built: the capacity and model facts the router's scheduler needs.
struct WorkerInitResult {
  int64_t num_device_blocks = 0;
  int64_t num_host_blocks = 0;
  int64_t block_size = 0;
  int64_t max_model_len = 0;
  int64_t vocab_size = 0;
  int64_t sliding_window = 0;  // StepRunner::sliding_window(): > 0 lets the engine free blocks
  std::vector<int64_t> kv_group_windows;  // StepRunner::kv_group_windows(); empty: one group
  int64_t weight_bytes = 0;    // this rank's shard in its stored types, plus the packed forms
                               // the CPU GEMMs read (ModelWeights::num_bytes; and draft's)
  int64_t kv_cache_bytes = 0;  // this rank's device KV cache (the draft model's included)
  std::string communicator;    // the backend in use: "single", "gloo", "nccl"
};

/// Where a plan stands in the router's order.
struct PlanTicket {
  uint64_t generation = 0;  // must be the runtime's current one
  uint64_t sequence = 0;    // 0, 1, 2, ... per generation: the order plans are applied in
  int64_t step_id = 0;      // for the error of a failed step
};

struct AppliedStep {
  StepResult result;
  double step_seconds = 0;  // time applying the plan
};

enum class WorkerState { kUninitialized, kReady, kFailed };
/// "UNINITIALIZED", "READY", "FAILED" (the names of pagoda.internal.HealthResponse.State).
std::string_view WorkerStateName(WorkerState state);

struct WorkerHealth {
  WorkerState state = WorkerState::kUninitialized;
  uint64_t generation = 0;
  int32_t tp_rank = 0;
  int32_t tp_size = 0;
  uint64_t next_sequence = 0;  // the plan Execute applies next
  std::string error;           // why the runtime is FAILED
  int64_t num_sequences = 0;   // live sequences; 0 while a step runs
  bool draining = false;       // StartDraining was called (reported as DRAINING)
  bool step_in_progress = false;
  absl::Time last_step_end = absl::InfinitePast();  // when the last Execute returned
};

class WorkerRuntime {
 public:
  explicit WorkerRuntime(WorkerRuntimeOptions options);
  /// Waits for the Init or step in progress, then frees the model.
  ~WorkerRuntime();
  WorkerRuntime(const WorkerRuntime&) = delete;
  WorkerRuntime& operator=(const WorkerRuntime&) = delete;

  /// Replaces everything with what `config` asks for (the previous model is freed first).
  /// InvalidArgument naming the field for a bad config; Aborted when a newer Init superseded it
  /// while it loaded; any other error leaves the runtime FAILED. Errors name the rank.
  absl::StatusOr<WorkerInitResult> Init(const WorkerInitConfig& config);

  /// Applies `plan` once every plan numbered before it in its generation was applied; a plan
  /// that could not be decoded (`plan` holds the error) takes its turn and fails the step.
  /// FailedPrecondition: not READY at that generation; InvalidArgument: that sequence was
  /// already applied; DeadlineExceeded: an earlier plan did not arrive within order_timeout
  /// (the runtime turns FAILED); Aborted: re-initialized or failed while the plan waited; the
  /// step's own error (the runtime turns FAILED) otherwise, naming the rank.
  absl::StatusOr<AppliedStep> Execute(const PlanTicket& ticket,
                                      const absl::StatusOr<StepPlan>& plan);

  WorkerHealth Health() const;

  /// The process is going away (SIGTERM): Health reports DRAINING so the router moves the
  /// requests elsewhere while the steps it still sends are applied; Init is refused from now on.
  void StartDraining();

  /// Drops the model and every sequence; plans still waiting for their turn give up.
  void Shutdown();

  /// Rank 0's bootstrap store, which the other ranks of its replica reach over its service.
  InMemoryRendezvousStore& bootstrap_store() { return store_; }

 private:
  // What Init builds; replaced as a whole.
  struct Built {
    std::unique_ptr<Communicator> communicator;
    std::unique_ptr<StepRunner> steps;  // its ModelRunner borrows `communicator`: destroyed first
  };

  absl::StatusOr<std::unique_ptr<Built>> Build(const WorkerInitConfig& config,
                                               WorkerInitResult& result);
  /// Joins the replica's group over `backend` (SelectCommunicator's answer).
  absl::StatusOr<std::unique_ptr<Communicator>> JoinCommunicator(const WorkerInitConfig& config,
                                                                 const std::string& backend);
  // Waits until no Init or Execute holds the built state, then takes it.
  void AcquireBuiltLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const WorkerRuntimeOptions options_;
  InMemoryRendezvousStore store_;  // served to the other ranks when this is rank 0
  // Loads the model and applies the steps: the kernels' parallel regions start from this one
  // thread, whichever of the service's threads called (one OpenMP team: kernels/cpu_threads.h).
  ComputeThread compute_;

  mutable absl::Mutex mu_;
  WorkerState state_ ABSL_GUARDED_BY(mu_) = WorkerState::kUninitialized;
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  int32_t tp_rank_ ABSL_GUARDED_BY(mu_) = 0;
  int32_t tp_size_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  std::string error_ ABSL_GUARDED_BY(mu_);
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time last_step_end_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  // An Init or Execute is using built_ outside the lock.
  bool busy_ ABSL_GUARDED_BY(mu_) = false;
  std::unique_ptr<Built> built_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pagoda
