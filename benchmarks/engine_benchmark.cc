// Engine-core benchmarks that need no model: the Scheduler (with its KVCacheManager) driven by a
// SimulatedExecutor over a seeded ShareGPT-like workload (tools/bench/sharegpt_like.h). The KV
// figures are counts, deterministic for a seed; only the scheduler-cost times vary. Method and
// figures: docs/performance.md, "Engine core (issue #3)".
//
//   build/benchmarks/engine_benchmark
//   build/benchmarks/engine_benchmark --benchmark_filter=SchedulerCost
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "common/kv_cache_groups.h"
#include "engine/engine_config.h"
#include "engine/scheduler.h"
#include "engine/simulated_executor.h"
#include "tools/bench/sharegpt_like.h"

namespace pagoda {
namespace {

constexpr int64_t kBlockSize = 16;
constexpr int64_t kMaxModelLen = 2048;
constexpr int64_t kVocab = 32000;
constexpr int32_t kEos = 2;

EngineRequest MakeRequest(std::string id, std::vector<int32_t> prompt, int32_t max_tokens,
                          uint64_t seed) {
  EngineRequest r{.request_id = std::move(id), .prompt_token_ids = std::move(prompt), .seed = seed};
  r.params.max_tokens = max_tokens;
  r.params.ignore_eos = true;
  return r;
}

ExecutorInfo Info(int64_t num_blocks, int64_t max_model_len = kMaxModelLen) {
  return {.num_device_blocks = num_blocks,
          .block_size = kBlockSize,
          .max_model_len = max_model_len,
          .vocab_size = kVocab};
}

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "engine_benchmark: %s\n", message.c_str());
  std::abort();
}

// Runs every request to completion, one synchronous step at a time; `observe` sees the state
// after each step ran on the executor and before its result is applied (the blocks this step
// allocated, the KV positions it computed). Returns the number of steps.
int64_t RunToCompletion(Scheduler& scheduler, SimulatedExecutor& executor,
                        const std::function<void()>& observe) {
  int64_t steps = 0;
  while (scheduler.HasUnfinishedRequests()) {
    std::optional<ScheduledStep> step = scheduler.Schedule();
    if (!step) Die("nothing schedulable while requests are unfinished and nothing is in flight");
    absl::StatusOr<StepResult> result = executor.Apply(step->plan);
    if (!result.ok()) Die(std::string(result.status().message()));
    observe();
    scheduler.ApplyResult(*result);
    ++steps;
  }
  return steps;
}

int64_t UsedBlocks(const Scheduler& scheduler, int64_t num_blocks) {
  return num_blocks - scheduler.kv_cache().NumFreeBlocks();
}

// --- KV waste -----------------------------------------------------------------------------------
// 1000 ShareGPT-like requests, all queued at t = 0, through the continuous (paged) or the static
// scheduler. At every step: allocated slots = blocks in use x 16, filled slots = KV positions
// computed (the executor's count). Waste = sum(allocated - filled) / sum(allocated) over steps,
// i.e. the time-averaged share of allocated slots holding no token. The same trace also gives
// the waste had each live sequence reserved max_model_len = 2048 slots (vLLM's comparison).
void BM_KvWaste(benchmark::State& state) {
  const bool is_static = state.range(0) == 1;
  const int64_t num_requests = 1000;
  const int64_t num_blocks = 8192;  // 131072 token slots
  const std::vector<SyntheticRequest> workload =
      ShareGptLikeWorkload({.seed = 1}).Sample(num_requests);
  double prompt_sum = 0, output_sum = 0;
  for (const SyntheticRequest& r : workload) {
    prompt_sum += static_cast<double>(r.prompt_token_ids.size());
    output_sum += r.output_len;
  }
  for (auto _ : state) {
    SimulatedExecutor executor({.info = Info(num_blocks), .eos_token_ids = {kEos}});
    EngineConfig config{
        .max_num_seqs = 256,
        .max_num_batched_tokens = 4096,
        .scheduler = is_static ? SchedulerKind::kStatic : SchedulerKind::kContinuous};
    if (absl::Status s = config.Validate(executor.info()); !s.ok()) Die(std::string(s.message()));
    Scheduler scheduler(config, executor.info(), executor.eos_token_ids());
    for (int64_t i = 0; i < num_requests; ++i) {
      const SyntheticRequest& r = workload[i];
      absl::Status s = scheduler.AddRequest(
          MakeRequest(absl::StrCat("r", i), r.prompt_token_ids, r.output_len, i));
      if (!s.ok()) Die(std::string(s.message()));
    }
    double allocated = 0, filled = 0, allocated_max_len = 0, running = 0;
    const int64_t steps = RunToCompletion(scheduler, executor, [&] {
      allocated += static_cast<double>(UsedBlocks(scheduler, num_blocks) * kBlockSize);
      filled += static_cast<double>(executor.num_computed_tokens());
      allocated_max_len += static_cast<double>(executor.num_sequences() * kMaxModelLen);
      running += static_cast<double>(executor.num_sequences());
    });
    state.counters["waste_pct"] = 100.0 * (allocated - filled) / allocated;
    state.counters["waste_if_2048_reserved_pct"] =
        100.0 * (allocated_max_len - filled) / allocated_max_len;
    state.counters["steps"] = static_cast<double>(steps);
    state.counters["mean_running_seqs"] = running / static_cast<double>(steps);
    state.counters["mean_allocated_slots"] = allocated / static_cast<double>(steps);
    state.counters["preemptions"] = static_cast<double>(scheduler.stats().num_preemptions);
  }
  state.counters["mean_prompt_tokens"] = prompt_sum / static_cast<double>(num_requests);
  state.counters["mean_output_tokens"] = output_sum / static_cast<double>(num_requests);
  state.SetLabel(is_static ? "static (prompt + max_tokens reserved)" : "paged (block 16)");
}
BENCHMARK(BM_KvWaste)->Arg(0)->Arg(1)->Iterations(1)->Unit(benchmark::kMillisecond);

// --- Sharing ------------------------------------------------------------------------------------
// 64 ShareGPT-like requests (seed 2), each with beam_width W (or n = 4 parallel samples), all
// queued at once; peak device blocks in use, with sharing (the scheduler forks the samples/beams
// off one prompt, copy-on-write) vs without (W or n independent requests with the same prompt,
// prefix caching off). Same max_tokens, ignore_eos, so both produce the same number of tokens.
int64_t PeakBlocks(const std::vector<EngineRequest>& requests, int64_t num_blocks) {
  SimulatedExecutor executor({.info = Info(num_blocks), .eos_token_ids = {kEos}});
  EngineConfig config{.max_num_seqs = 1024, .max_num_batched_tokens = 8192};
  if (absl::Status s = config.Validate(executor.info()); !s.ok()) Die(std::string(s.message()));
  Scheduler scheduler(config, executor.info(), executor.eos_token_ids());
  for (const EngineRequest& r : requests) {
    if (absl::Status s = scheduler.AddRequest(r); !s.ok()) Die(std::string(s.message()));
  }
  int64_t peak = 0;
  RunToCompletion(scheduler, executor,
                  [&] { peak = std::max(peak, UsedBlocks(scheduler, num_blocks)); });
  if (scheduler.stats().num_preemptions > 0) Die("sharing benchmark preempted: enlarge the cache");
  return peak;
}

void BM_Sharing(benchmark::State& state) {
  const bool beam = state.range(0) == 1;
  const int32_t width = static_cast<int32_t>(state.range(1));
  const int64_t num_requests = 64;
  const int64_t num_blocks = 65536;
  const std::vector<SyntheticRequest> workload =
      ShareGptLikeWorkload({.seed = 2}).Sample(num_requests);
  std::vector<EngineRequest> shared, copies;
  for (int64_t i = 0; i < num_requests; ++i) {
    const SyntheticRequest& w = workload[i];
    EngineRequest r = MakeRequest(absl::StrCat("r", i), w.prompt_token_ids, w.output_len, i);
    if (beam) {
      r.params.beam_width = width;
    } else {
      r.params.n = width;
    }
    shared.push_back(std::move(r));
    for (int32_t j = 0; j < width; ++j) {
      copies.push_back(MakeRequest(absl::StrCat("r", i, "_", j), w.prompt_token_ids, w.output_len,
                                   static_cast<uint64_t>(i * 100 + j)));
    }
  }
  for (auto _ : state) {
    const int64_t with = PeakBlocks(shared, num_blocks);
    const int64_t without = PeakBlocks(copies, num_blocks);
    state.counters["peak_blocks_shared"] = static_cast<double>(with);
    state.counters["peak_blocks_unshared"] = static_cast<double>(without);
    state.counters["saved_pct"] =
        100.0 * static_cast<double>(without - with) / static_cast<double>(without);
  }
  state.SetLabel(beam ? absl::StrCat("beam search, width ", width)
                      : absl::StrCat("parallel sampling, n = ", width));
}
BENCHMARK(BM_Sharing)
    ->Args({1, 4})
    ->Args({1, 6})
    ->Args({0, 4})
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

// --- Sliding window ----------------------------------------------------------------------------
// A Mistral-shaped model with a window of 1024 positions in every layer (issue 17): 16 requests
// of 512 prompt tokens and 3584 outputs (4096-token sequences), all queued at once, with a cache
// large enough for full attention. Peak and time-averaged device blocks in use, windowed (the
// engine frees the blocks behind each window) against full attention (window 0) on the same trace.
void BM_SlidingWindowKv(benchmark::State& state) {
  const int64_t window = state.range(0);
  const int64_t num_requests = 16;
  const int64_t prompt_len = 512;
  const int32_t output_len = 3584;
  const int64_t max_model_len = 4096;
  const int64_t num_blocks = num_requests * max_model_len / kBlockSize + 64;
  for (auto _ : state) {
    ExecutorInfo info = Info(num_blocks, max_model_len);
    info.sliding_window = window;
    SimulatedExecutor executor({.info = info, .eos_token_ids = {kEos}});
    EngineConfig config{.max_num_seqs = 256, .max_num_batched_tokens = 2048};
    if (absl::Status s = config.Validate(executor.info()); !s.ok()) Die(std::string(s.message()));
    Scheduler scheduler(config, executor.info(), executor.eos_token_ids());
    for (int64_t i = 0; i < num_requests; ++i) {
      std::vector<int32_t> prompt(static_cast<size_t>(prompt_len));
      for (int64_t t = 0; t < prompt_len; ++t)
        prompt[t] = static_cast<int32_t>(3 + (i * 7919 + t) % 30000);
      absl::Status s =
          scheduler.AddRequest(MakeRequest(absl::StrCat("r", i), std::move(prompt), output_len, i));
      if (!s.ok()) Die(std::string(s.message()));
    }
    int64_t peak = 0;
    double used = 0;
    const int64_t steps = RunToCompletion(scheduler, executor, [&] {
      const int64_t now = UsedBlocks(scheduler, num_blocks);
      peak = std::max(peak, now);
      used += static_cast<double>(now);
    });
    state.counters["peak_blocks"] = static_cast<double>(peak);
    state.counters["mean_blocks"] = used / static_cast<double>(steps);
    state.counters["peak_kv_usage_pct"] =
        100.0 * static_cast<double>(peak) / static_cast<double>(num_blocks);
    state.counters["steps"] = static_cast<double>(steps);
    state.counters["preemptions"] = static_cast<double>(scheduler.stats().num_preemptions);
  }
  state.SetLabel(window > 0 ? absl::StrCat("window ", window) : "full attention");
}
BENCHMARK(BM_SlidingWindowKv)->Arg(0)->Arg(1024)->Iterations(1)->Unit(benchmark::kMillisecond);

// --- Hybrid (Gemma-3-shaped) KV memory --------------------------------------------------------
// The trace of BM_SlidingWindowKv on a Gemma-3-1B-shaped model: 26 layers, every 6th global, the
// others sliding a window of 1024. Arg 0 keeps every block (one table for all layers: a block holds
// 26 layers); arg 1 uses KV cache groups (common/kv_cache_groups.h: 7 groups of up to K = 4 layers,
// a block holds 4 layers, the local groups free behind the window). Both get the same memory,
// counted in layer-blocks (one layer's K and V of one block): 4160 blocks of 26 layers.
void BM_HybridWindowKv(benchmark::State& state) {
  const bool grouped = state.range(0) != 0;
  const int64_t num_requests = 16;
  const int64_t prompt_len = 512;
  const int32_t output_len = 3584;
  const int64_t max_model_len = 4096;
  const int64_t window = 1024;
  std::vector<int64_t> layer_windows;
  for (int l = 0; l < 26; ++l) layer_windows.push_back((l + 1) % 6 == 0 ? 0 : window);
  const KvCacheGroups groups = PlanKvCacheGroups(layer_windows);
  const int64_t layers_per_block = grouped ? groups.num_slots : 26;
  const int64_t memory_layer_blocks = (num_requests * max_model_len / kBlockSize + 64) * 26;
  const int64_t num_blocks = memory_layer_blocks / layers_per_block;
  for (auto _ : state) {
    ExecutorInfo info = Info(num_blocks, max_model_len);
    if (grouped) info.kv_group_windows = groups.windows;
    SimulatedExecutor executor({.info = info, .eos_token_ids = {kEos}});
    EngineConfig config{.max_num_seqs = 256, .max_num_batched_tokens = 2048};
    if (absl::Status s = config.Validate(executor.info()); !s.ok()) Die(std::string(s.message()));
    Scheduler scheduler(config, executor.info(), executor.eos_token_ids());
    for (int64_t i = 0; i < num_requests; ++i) {
      std::vector<int32_t> prompt(static_cast<size_t>(prompt_len));
      for (int64_t t = 0; t < prompt_len; ++t)
        prompt[t] = static_cast<int32_t>(3 + (i * 7919 + t) % 30000);
      absl::Status s =
          scheduler.AddRequest(MakeRequest(absl::StrCat("r", i), std::move(prompt), output_len, i));
      if (!s.ok()) Die(std::string(s.message()));
    }
    int64_t peak = 0;
    double used = 0;
    double peak_usage = 0;
    const int64_t steps = RunToCompletion(scheduler, executor, [&] {
      const int64_t now = UsedBlocks(scheduler, num_blocks);
      peak = std::max(peak, now);
      used += static_cast<double>(now);
      peak_usage = std::max(peak_usage, scheduler.stats().kv_cache_usage);
    });
    state.counters["groups"] = grouped ? groups.num_groups() : 1;
    state.counters["peak_blocks"] = static_cast<double>(peak);
    state.counters["peak_layer_blocks"] = static_cast<double>(peak * layers_per_block);
    state.counters["mean_layer_blocks"] =
        used * static_cast<double>(layers_per_block) / static_cast<double>(steps);
    state.counters["peak_kv_usage_pct"] = 100.0 * peak_usage;
    state.counters["steps"] = static_cast<double>(steps);
    state.counters["preemptions"] = static_cast<double>(scheduler.stats().num_preemptions);
  }
  state.SetLabel(grouped ? "KV cache groups" : "all blocks kept");
}
BENCHMARK(BM_HybridWindowKv)->Arg(0)->Arg(1)->Iterations(1)->Unit(benchmark::kMillisecond);

// --- Scheduler cost per step --------------------------------------------------------------------
// R sequences with C-token prompts, prefilled, then in decode steady state (every sequence
// decodes one token per step; nothing waits). Timed: Schedule() + ApplyResult() of one step,
// manual time; the simulated executor's work is not timed. Blocks held ~ R * C / 16.
void BM_SchedulerCost(benchmark::State& state) {
  const int64_t running = state.range(0);
  const int64_t context = state.range(1);
  const int64_t max_tokens = 4096;  // never reached: the steady state lasts the whole run
  const int64_t max_model_len = context + max_tokens;
  const int64_t blocks_per_seq = (context + 2048 + kBlockSize - 1) / kBlockSize;
  SimulatedExecutor executor(
      {.info = Info(running * blocks_per_seq, max_model_len), .eos_token_ids = {kEos}});
  EngineConfig config{.max_num_seqs = running, .max_num_batched_tokens = 8192};
  if (absl::Status s = config.Validate(executor.info()); !s.ok()) Die(std::string(s.message()));
  Scheduler scheduler(config, executor.info(), executor.eos_token_ids());
  for (int64_t i = 0; i < running; ++i) {
    std::vector<int32_t> prompt(context);
    for (int64_t p = 0; p < context; ++p) {
      prompt[p] = 3 + static_cast<int32_t>((p * 7919 + i * 104729) % (kVocab - 3));
    }
    absl::Status s = scheduler.AddRequest(
        MakeRequest(absl::StrCat("r", i), std::move(prompt), static_cast<int32_t>(max_tokens), i));
    if (!s.ok()) Die(std::string(s.message()));
  }
  // Prefill until a step is all decodes.
  for (;;) {
    std::optional<ScheduledStep> step = scheduler.Schedule();
    if (!step) Die("nothing schedulable during prefill");
    const bool steady = step->num_prefill_tokens == 0 && step->num_decode_tokens == running;
    absl::StatusOr<StepResult> result = executor.Apply(step->plan);
    if (!result.ok()) Die(std::string(result.status().message()));
    scheduler.ApplyResult(*result);
    if (steady) break;
  }
  using Clock = std::chrono::steady_clock;
  int64_t max_blocks_held = 0;
  for (auto _ : state) {
    const Clock::time_point t0 = Clock::now();
    std::optional<ScheduledStep> step = scheduler.Schedule();
    const Clock::time_point t1 = Clock::now();
    if (!step || step->num_decode_tokens != running) Die("left the decode steady state");
    absl::StatusOr<StepResult> result = executor.Apply(step->plan);
    if (!result.ok()) Die(std::string(result.status().message()));
    const Clock::time_point t2 = Clock::now();
    std::vector<SequenceUpdate> updates = scheduler.ApplyResult(*result);
    const Clock::time_point t3 = Clock::now();
    benchmark::DoNotOptimize(updates.data());
    state.SetIterationTime(std::chrono::duration<double>((t1 - t0) + (t3 - t2)).count());
    max_blocks_held =
        std::max(max_blocks_held, UsedBlocks(scheduler, executor.info().num_device_blocks));
  }
  state.counters["running_seqs"] = static_cast<double>(running);
  state.counters["blocks_held"] = static_cast<double>(max_blocks_held);
  state.counters["ns_per_seq"] = benchmark::Counter(
      static_cast<double>(running),
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_SchedulerCost)
    ->ArgsProduct({{256, 1024}, {512, 2048}})
    ->UseManualTime()
    ->Iterations(1000)
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace pagoda
