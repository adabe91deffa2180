// Tensor parallelism on the CPU backend: the step time of a dummy SmolLM2-135M-sized model at
// TP = 1 and TP = 2, the ranks as threads of this process joined by Gloo over 127.0.0.1 (the
// collectives pagoda-worker uses), each rank's ModelRunner::Execute on its own thread, one step
// timed from posting it to every rank until the last rank returns. Figures only. Method and
// figures: docs/performance.md, "Router and tensor parallelism (issue 4)".
//
// The model: SmolLM2-135M (benchmarks/smollm2_config.h) has 9 query and 3 KV heads, which 2 ranks
// cannot split (worker/tensor_parallel.h), so both TP sizes run the same shape with 12 query and
// 4 KV heads of head_dim 48 instead of 9 and 3 of 64: the same q/k/v/o matrices (q 576, KV 192
// wide), the same parameters and bytes (538 MB fp32), the same FLOPs, only the attention split
// into narrower heads.
//
// Threads: the development machine has 2 cores. Each rank thread sets its own OpenMP thread
// count (omp_set_num_threads is per thread): TP 1 runs 1 rank with 2 OpenMP threads, TP 2 runs 2
// ranks with 1 each, so both use the two cores and no more (Gloo's own I/O threads come on top).
// TP 2 on one 2-core machine therefore does not add compute or memory bandwidth; it only splits
// the same work in two and adds the collectives: the figures show that cost, not a speed-up.
//
//   BM_DecodeStep/tp/batch   one decode step of `batch` sequences (1 or 32), each with 128
//                            prompt tokens prefilled once outside the timed loop; step i writes
//                            position 128 + i % 32 (a context of 128..159, mean 143.5), so every
//                            position it attends to was written before
//   BM_Prefill/tp            a 512-token prompt from an empty cache
//
//   comm_ms        time per step inside AllReduceSum / AllGather (the 2 all-reduces per layer
//                  and the all-gather of the logits), mean over ranks; it includes waiting for
//                  the slower rank, so it bounds the collectives' cost from above
//   comm_share_pct comm_ms / step time
//   BM_GlooAllReduce/floats  one all-reduce of 576 or 32 * 576 floats between the two otherwise
//                            idle ranks: the collectives' own latency, without waiting on a peer
//
//   build/benchmarks/tensor_parallel_benchmark --benchmark_min_time=1
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <numeric>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "benchmark/benchmark.h"
#include "benchmarks/smollm2_config.h"
#include "common/model_config.h"
#include "worker/communicator.h"
#include "worker/gloo_communicator.h"
#include "worker/model_runner.h"
#include "worker/model_weights.h"
#include "worker/rendezvous_store.h"
#include "worker/tensor_parallel.h"

namespace pagoda {
namespace {

constexpr int kCores = 2;
constexpr int64_t kBlockSize = 16;
constexpr int64_t kContext = 128;      // prefilled tokens per decode sequence
constexpr int64_t kDecodeWindow = 32;  // decode positions [kContext, kContext + kDecodeWindow)
constexpr int64_t kMaxBatch = 32;
constexpr int64_t kPrefillTokens = 512;
constexpr int64_t kDecodeBlocks = (kContext + kDecodeWindow + kBlockSize - 1) / kBlockSize;
constexpr int64_t kPrefillBlocks = (kPrefillTokens + kBlockSize - 1) / kBlockSize;

using Clock = std::chrono::steady_clock;

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "tensor_parallel_benchmark: %s\n", message.c_str());
  std::abort();
}

// SmolLM2-135M's matrices with heads that 2 ranks can split (see the header).
ModelConfig SplittableSmolLm2Config() {
  ModelConfig c = SmolLm2Config();
  c.num_attention_heads = 12;
  c.num_key_value_heads = 4;
  c.head_dim = 48;
  return c;
}

// Forwards to a communicator and adds up the wall time spent in its collectives.
class TimedCommunicator final : public Communicator {
 public:
  explicit TimedCommunicator(std::unique_ptr<Communicator> inner) : inner_(std::move(inner)) {}

  int32_t rank() const override { return inner_->rank(); }
  int32_t size() const override { return inner_->size(); }
  std::string_view backend() const override { return inner_->backend(); }

  absl::Status AllReduceSum(float* data, int64_t count) override {
    const Clock::time_point start = Clock::now();
    absl::Status status = inner_->AllReduceSum(data, count);
    seconds_ += std::chrono::duration<double>(Clock::now() - start).count();
    return status;
  }
  absl::Status AllGather(const float* input, int64_t count, float* output) override {
    const Clock::time_point start = Clock::now();
    absl::Status status = inner_->AllGather(input, count, output);
    seconds_ += std::chrono::duration<double>(Clock::now() - start).count();
    return status;
  }

  /// Total time in collectives; read by the rank's own thread only.
  double seconds() const { return seconds_; }

 private:
  std::unique_ptr<Communicator> inner_;
  double seconds_ = 0;
};

// Token ids and block tables of the sequences the benchmarks run; shared read-only by the ranks.
struct Workload {
  std::vector<std::vector<int32_t>> prompts;  // [kMaxBatch][kContext]
  std::vector<std::vector<int32_t>> tables;   // [kMaxBatch][kDecodeBlocks], then the prefill's
  std::vector<int32_t> decode_tokens;         // [kMaxBatch]
  std::vector<int32_t> prefill_prompt;        // [kPrefillTokens]

  explicit Workload(int64_t vocab_size) {
    auto id = [vocab_size](int64_t i) {
      return static_cast<int32_t>((i * 7919 + 13) % vocab_size);
    };
    int32_t next_block = 0;
    for (int64_t s = 0; s < kMaxBatch; ++s) {
      std::vector<int32_t>& prompt = prompts.emplace_back(kContext);
      for (int64_t p = 0; p < kContext; ++p) prompt[p] = id(s * kContext + p);
      std::vector<int32_t>& table = tables.emplace_back(kDecodeBlocks);
      std::iota(table.begin(), table.end(), next_block);
      next_block += static_cast<int32_t>(kDecodeBlocks);
      decode_tokens.push_back(id(1'000'000 + s));
    }
    std::vector<int32_t>& table = tables.emplace_back(kPrefillBlocks);
    std::iota(table.begin(), table.end(), next_block);
    prefill_prompt.resize(kPrefillTokens);
    for (int64_t p = 0; p < kPrefillTokens; ++p) prefill_prompt[p] = id(2'000'000 + p);
  }

  static int64_t num_blocks() { return kMaxBatch * kDecodeBlocks + kPrefillBlocks; }
  absl::Span<const int32_t> prefill_table() const { return tables[kMaxBatch]; }
};

// One tensor-parallel group: a thread per rank owning that rank's ModelRunner (and Gloo
// communicator), running each job the benchmark thread posts (a step, or bare collectives).
// Built once per TP size; the decode sequences' prompts are prefilled at construction.
class RankGroup {
 public:
  struct StepTime {
    double seconds = 0;       // posting to the last rank's return
    double comm_seconds = 0;  // in collectives, mean over ranks
  };
  /// Work every rank runs, on its own thread: (its runner, its communicator or null).
  using Job = std::function<absl::Status(ModelRunner&, Communicator*)>;

  /// Builds the weights and runners on the rank threads, then prefills the decode prompts.
  explicit RankGroup(int32_t size)
      : size_(size),
        config_(SplittableSmolLm2Config()),
        workload_(config_.vocab_size),
        ranks_(size) {
    for (int32_t r = 0; r < size; ++r) threads_.emplace_back([this, r] { RankMain(r); });
    {
      absl::MutexLock lock(&mu_);
      auto all_ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return num_ready_ == size_; };
      mu_.Await(absl::Condition(&all_ready));
    }
    std::vector<SequenceInput> prefill;
    for (int64_t s = 0; s < kMaxBatch; ++s) {
      prefill.push_back({.token_ids = workload_.prompts[s], .block_table = workload_.tables[s]});
    }
    if (absl::StatusOr<StepTime> step = Step(prefill); !step.ok()) {
      Die(absl::StrCat("prefill at TP ", size, ": ", step.status().ToString()));
    }
  }

  /// Stops the rank threads (between steps) and joins them.
  ~RankGroup() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    for (std::thread& thread : threads_) thread.join();
  }

  RankGroup(const RankGroup&) = delete;
  RankGroup& operator=(const RankGroup&) = delete;

  int32_t size() const { return size_; }
  const Workload& workload() const { return workload_; }

  /// Runs `batch` on every rank; the status of the first rank that failed, if any.
  absl::StatusOr<StepTime> Step(absl::Span<const SequenceInput> batch) {
    return Run(
        [batch](ModelRunner& runner, Communicator*) { return runner.Execute(batch).status(); });
  }

  /// Runs `job` on every rank and waits for all; the status of the first rank that failed.
  absl::StatusOr<StepTime> Run(const Job& job) {
    const Clock::time_point start = Clock::now();
    absl::MutexLock lock(&mu_);
    job_ = &job;
    num_done_ = 0;
    ++step_id_;
    auto all_done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return num_done_ == size_; };
    mu_.Await(absl::Condition(&all_done));
    StepTime time{.seconds = std::chrono::duration<double>(Clock::now() - start).count()};
    for (const Rank& rank : ranks_) time.comm_seconds += rank.last_comm_seconds / size_;
    for (const Rank& rank : ranks_) {
      if (!rank.last_status.ok()) return rank.last_status;
    }
    return time;
  }

 private:
  struct Rank {
    std::unique_ptr<TimedCommunicator> communicator;  // null at TP 1
    std::unique_ptr<ModelRunner> runner;
    absl::Status last_status;
    double last_comm_seconds = 0;
  };

  // A rank's thread: builds its runner, then runs the posted steps until the group stops. The
  // runner and the communicator live and die on this thread.
  void RankMain(int32_t r) {
    omp_set_num_threads(kCores / size_);
    const TensorParallelShard shard{.rank = r, .size = size_};
    Rank& rank = ranks_[r];
    if (size_ > 1) {
      absl::StatusOr<std::unique_ptr<Communicator>> gloo = CreateGlooCommunicator(
          {.rank = r, .size = size_, .prefix = absl::StrCat("tp-bench/", size_, "/")}, &store_);
      if (!gloo.ok()) Die(absl::StrCat("rank ", r, ": ", gloo.status().ToString()));
      rank.communicator = std::make_unique<TimedCommunicator>(std::move(*gloo));
    }
    absl::StatusOr<std::unique_ptr<ModelRunner>> runner =
        ModelRunner::Create(config_, DummyModelWeights(config_, /*seed=*/0, shard),
                            {.num_blocks = Workload::num_blocks(),
                             .block_size = kBlockSize,
                             .shard = shard,
                             .communicator = rank.communicator.get()});
    if (!runner.ok()) Die(absl::StrCat("rank ", r, ": ", runner.status().ToString()));
    rank.runner = std::move(*runner);
    uint64_t last_step = 0;
    {
      absl::MutexLock lock(&mu_);
      ++num_ready_;
    }
    while (true) {
      const Job* job = nullptr;
      {
        absl::MutexLock lock(&mu_);
        auto posted = [this, last_step]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return step_id_ != last_step || stopping_;
        };
        mu_.Await(absl::Condition(&posted));
        if (stopping_) break;
        last_step = step_id_;
        job = job_;
      }
      const double comm_start = rank.communicator ? rank.communicator->seconds() : 0;
      absl::Status status = (*job)(*rank.runner, rank.communicator.get());
      const double comm = rank.communicator ? rank.communicator->seconds() - comm_start : 0;
      absl::MutexLock lock(&mu_);
      rank.last_status = std::move(status);
      rank.last_comm_seconds = comm;
      ++num_done_;
    }
    rank.runner.reset();
    rank.communicator.reset();
  }

  const int32_t size_;
  const ModelConfig config_;
  const Workload workload_;
  InMemoryRendezvousStore store_;
  std::vector<Rank> ranks_;  // ranks_[r]: rank r's thread only, but its results under mu_

  absl::Mutex mu_;
  int32_t num_ready_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t step_id_ ABSL_GUARDED_BY(mu_) = 0;
  const Job* job_ ABSL_GUARDED_BY(mu_) = nullptr;  // the caller's, while Run() waits
  int32_t num_done_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  std::vector<std::thread> threads_;  // last member
};

// The group of the running benchmark; asking for another TP size replaces it (the cases are
// registered TP size by TP size, so each group is built once). main() releases the last one.
std::unique_ptr<RankGroup>& CurrentGroup() {
  static auto* group = new std::unique_ptr<RankGroup>();
  return *group;
}

RankGroup& GroupOfSize(int32_t size) {
  std::unique_ptr<RankGroup>& group = CurrentGroup();
  if (group == nullptr || group->size() != size) {
    group.reset();  // frees its memory before the next one is built
    group = std::make_unique<RankGroup>(size);
  }
  return *group;
}

// `time`: the steps' times and collective times summed over the iterations.
void Report(benchmark::State& state, int64_t tokens_per_step, const RankGroup::StepTime& time) {
  const auto steps = static_cast<double>(state.iterations());
  state.counters["tokens_per_s"] =
      benchmark::Counter(static_cast<double>(tokens_per_step) * steps, benchmark::Counter::kIsRate);
  state.counters["comm_ms"] = time.comm_seconds * 1e3 / steps;
  state.counters["comm_share_pct"] = 100.0 * time.comm_seconds / time.seconds;
  state.SetLabel(absl::StrCat("TP ", state.range(0), ", ", kCores / state.range(0),
                              " OpenMP thread(s) per rank"));
}

// Args: {tp, batch}.
void BM_DecodeStep(benchmark::State& state) {
  RankGroup& group = GroupOfSize(static_cast<int32_t>(state.range(0)));
  const int64_t batch_size = state.range(1);
  const Workload& w = group.workload();
  std::vector<SequenceInput> batch(batch_size);
  RankGroup::StepTime total;
  int64_t step = 0;
  for (auto _ : state) {
    const int64_t position = kContext + step++ % kDecodeWindow;
    for (int64_t s = 0; s < batch_size; ++s) {
      batch[s] = {.token_ids = absl::MakeConstSpan(&w.decode_tokens[s], 1),
                  .num_computed_tokens = position,
                  .block_table = w.tables[s]};
    }
    absl::StatusOr<RankGroup::StepTime> time = group.Step(batch);
    if (!time.ok()) {
      state.SkipWithError(time.status().ToString().c_str());
      break;
    }
    state.SetIterationTime(time->seconds);
    total.seconds += time->seconds;
    total.comm_seconds += time->comm_seconds;
  }
  Report(state, batch_size, total);
}

// Args: {tp}.
void BM_Prefill(benchmark::State& state) {
  RankGroup& group = GroupOfSize(static_cast<int32_t>(state.range(0)));
  const Workload& w = group.workload();
  const SequenceInput input{.token_ids = w.prefill_prompt, .block_table = w.prefill_table()};
  RankGroup::StepTime total;
  for (auto _ : state) {
    absl::StatusOr<RankGroup::StepTime> time = group.Step({&input, 1});
    if (!time.ok()) {
      state.SkipWithError(time.status().ToString().c_str());
      break;
    }
    state.SetIterationTime(time->seconds);
    total.seconds += time->seconds;
    total.comm_seconds += time->comm_seconds;
  }
  Report(state, kPrefillTokens, total);
}

// The collectives alone, between idle ranks: `rounds` all-reduces of `floats` floats (576: a
// decode step of batch 1 after o_proj or down_proj; 32 * 576: batch 32), the floor of comm_ms.
// Args: {floats}.
void BM_GlooAllReduce(benchmark::State& state) {
  constexpr int kRounds = 100;
  RankGroup& group = GroupOfSize(2);
  const int64_t floats = state.range(0);
  const RankGroup::Job job = [floats](ModelRunner&, Communicator* communicator) {
    std::vector<float> data(floats, 1.0f);
    for (int i = 0; i < kRounds; ++i) {
      if (absl::Status status = communicator->AllReduceSum(data.data(), floats); !status.ok()) {
        return status;
      }
    }
    return absl::OkStatus();
  };
  double comm_seconds = 0;
  for (auto _ : state) {
    absl::StatusOr<RankGroup::StepTime> time = group.Run(job);
    if (!time.ok()) {
      state.SkipWithError(time.status().ToString().c_str());
      break;
    }
    state.SetIterationTime(time->comm_seconds);  // mean over ranks
    comm_seconds += time->comm_seconds;
  }
  state.counters["us_per_all_reduce"] =
      comm_seconds * 1e6 / (static_cast<double>(state.iterations()) * kRounds);
  state.SetLabel(absl::StrCat("TP 2, ", kRounds, " all-reduces per iteration"));
}

// TP size by TP size, so that each group is built (and its prompts prefilled) once.
BENCHMARK(BM_DecodeStep)
    ->ArgNames({"tp", "batch"})
    ->Args({1, 1})
    ->Args({1, 32})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Prefill)->ArgName("tp")->Arg(1)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DecodeStep)
    ->ArgNames({"tp", "batch"})
    ->Args({2, 1})
    ->Args({2, 32})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Prefill)->ArgName("tp")->Arg(2)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_GlooAllReduce)
    ->ArgName("floats")
    ->Arg(576)
    ->Arg(32 * 576)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace pagoda

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  pagoda::CurrentGroup().reset();  // joins the rank threads
  return 0;
}
