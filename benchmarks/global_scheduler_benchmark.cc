// GlobalScheduler::Pick cost: 8 replicas, 1k-token prompts (a 512-token system prompt out of 64,
// then a 512-token unique part), block size 16. Figures only.
//
//   least_loaded            a scan of the snapshots
//   prefix_aware/routed     hashing the prompt's 64 blocks, the routed-hash LRU (warm: every
//                           system prompt already routed), no replica callbacks
//   prefix_aware/exact      as above, plus each replica's exact query: a KVCacheManager under a
//                           mutex (what EngineLoop::NumCachedPrefixTokens does), whose cache
//                           holds the system prompts of its share
//
//   build-gs/benchmarks/global_scheduler_benchmark
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "benchmark/benchmark.h"
#include "engine/kv_cache_manager.h"
#include "router/global_scheduler.h"

namespace pagoda {
namespace {

constexpr int32_t kReplicas = 8;
constexpr int64_t kBlockSize = 16;
constexpr int32_t kSystemPrompts = 64;
constexpr int64_t kSystemPromptTokens = 512;
constexpr int64_t kPromptTokens = 1024;
constexpr int32_t kPrompts = 1024;

std::vector<std::vector<int32_t>> MakePrompts() {
  std::vector<std::vector<int32_t>> prompts;
  uint64_t state = 0x9E3779B97F4A7C15ULL;
  auto next_token = [&state] {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<int32_t>((state >> 33) % 32000);
  };
  for (int32_t p = 0; p < kPrompts; ++p) {
    std::vector<int32_t> prompt;
    const int32_t system = p % kSystemPrompts;
    for (int64_t i = 0; i < kSystemPromptTokens; ++i) {
      prompt.push_back(static_cast<int32_t>((system * 7919 + i * 31) % 32000));
    }
    while (static_cast<int64_t>(prompt.size()) < kPromptTokens) prompt.push_back(next_token());
    prompts.push_back(std::move(prompt));
  }
  return prompts;
}

// One replica's prefix cache behind its engine lock.
struct FakeReplicaCache {
  absl::Mutex mu;
  KVCacheManager kv ABSL_GUARDED_BY(mu){
      {.num_device_blocks = 8192, .block_size = kBlockSize, .enable_prefix_caching = true}};

  int64_t CachedPrefixTokens(absl::Span<const int32_t> tokens) {
    absl::MutexLock lock(&mu);
    return kv.GetComputedBlocks(tokens).num_computed_tokens;
  }
};

std::vector<ReplicaSnapshot> MakeSnapshots() {
  std::vector<ReplicaSnapshot> replicas;
  for (int32_t r = 0; r < kReplicas; ++r) {
    replicas.push_back(ReplicaSnapshot{.ready = true,
                                       .num_running_requests = 40 + 3 * r,
                                       .num_waiting_requests = r % 3,
                                       .kv_cache_usage = 0.5});
  }
  return replicas;
}

void RunPicks(benchmark::State& state, GlobalScheduler& scheduler,
              const std::vector<std::vector<int32_t>>& prompts,
              const std::vector<ReplicaSnapshot>& replicas) {
  size_t next = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(scheduler.Pick(prompts[next], replicas));
    next = (next + 1) % prompts.size();
  }
  const GlobalScheduler::Stats stats = scheduler.stats();
  const double total =
      static_cast<double>(stats.routed_by_prefix + stats.routed_by_load + stats.routed_round_robin);
  state.counters["by_prefix_share"] = total > 0 ? stats.routed_by_prefix / total : 0;
}

void BM_PickLeastLoaded(benchmark::State& state) {
  const std::vector<std::vector<int32_t>> prompts = MakePrompts();
  GlobalScheduler scheduler({.policy = RoutingPolicy::kLeastLoaded, .block_size = kBlockSize},
                            kReplicas);
  RunPicks(state, scheduler, prompts, MakeSnapshots());
}
BENCHMARK(BM_PickLeastLoaded);

void BM_PickPrefixAwareRouted(benchmark::State& state) {
  const std::vector<std::vector<int32_t>> prompts = MakePrompts();
  GlobalScheduler scheduler({.policy = RoutingPolicy::kPrefixAware, .block_size = kBlockSize},
                            kReplicas);
  const std::vector<ReplicaSnapshot> replicas = MakeSnapshots();
  for (const std::vector<int32_t>& prompt : prompts) (void)scheduler.Pick(prompt, replicas);
  RunPicks(state, scheduler, prompts, replicas);
}
BENCHMARK(BM_PickPrefixAwareRouted);

void BM_PickPrefixAwareExact(benchmark::State& state) {
  const std::vector<std::vector<int32_t>> prompts = MakePrompts();
  std::vector<std::unique_ptr<FakeReplicaCache>> caches;
  for (int32_t r = 0; r < kReplicas; ++r) caches.push_back(std::make_unique<FakeReplicaCache>());
  // Replica r has computed the system prompts s with s % kReplicas == r (blocks cached, free).
  for (int32_t s = 0; s < kSystemPrompts; ++s) {
    FakeReplicaCache& cache = *caches[s % kReplicas];
    absl::MutexLock lock(&cache.mu);
    const std::vector<int32_t>& prompt = prompts[s];
    if (!cache.kv.AllocateSlots(/*seq=*/s, static_cast<int64_t>(prompt.size()))) std::abort();
    cache.kv.CacheBlocks(s, prompt);
    cache.kv.TakeBlockCopies();
    cache.kv.Free(s);
  }
  std::vector<ReplicaSnapshot> replicas = MakeSnapshots();
  for (int32_t r = 0; r < kReplicas; ++r) {
    replicas[r].cached_prefix_tokens = [cache = caches[r].get()](absl::Span<const int32_t> t) {
      return cache->CachedPrefixTokens(t);
    };
  }
  // No routed memory: the figure is the exact query's cost alone.
  GlobalScheduler scheduler({.policy = RoutingPolicy::kPrefixAware,
                             .block_size = kBlockSize,
                             .max_routed_hashes_per_replica = 0},
                            kReplicas);
  RunPicks(state, scheduler, prompts, replicas);
}
BENCHMARK(BM_PickPrefixAwareExact);

void BM_PickPrefixAwareExactAndRouted(benchmark::State& state) {
  const std::vector<std::vector<int32_t>> prompts = MakePrompts();
  std::vector<std::unique_ptr<FakeReplicaCache>> caches;
  for (int32_t r = 0; r < kReplicas; ++r) caches.push_back(std::make_unique<FakeReplicaCache>());
  std::vector<ReplicaSnapshot> replicas = MakeSnapshots();
  for (int32_t r = 0; r < kReplicas; ++r) {
    replicas[r].cached_prefix_tokens = [cache = caches[r].get()](absl::Span<const int32_t> t) {
      return cache->CachedPrefixTokens(t);
    };
  }
  GlobalScheduler scheduler({.policy = RoutingPolicy::kPrefixAware, .block_size = kBlockSize},
                            kReplicas);
  for (const std::vector<int32_t>& prompt : prompts) (void)scheduler.Pick(prompt, replicas);
  RunPicks(state, scheduler, prompts, replicas);
}
BENCHMARK(BM_PickPrefixAwareExactAndRouted);

}  // namespace
}  // namespace pagoda
