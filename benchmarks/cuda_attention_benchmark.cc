// Paged attention alone (kernels/paged_attention.h) on the CUDA device, one Llama-3-8B layer's
// shape (32 query heads, 8 KV heads, head_dim 128, a bf16 cache of 16-token blocks), so that one
// GPU run shows where the split-context decode and the tiled prefill kernels stand (run by
// scripts/gpu-check.sh --run; prints a line and exits 0 without a device):
// - BM_AttentionDecode/batch:B/context:C: B decodes, each at position C - 1 (C positions of
//   context): the decode path, ceil(C / 512) partitions and the combine pass.
// - BM_AttentionPrefill/tokens:N: one N-token prompt from an empty cache (the prefill path,
//   causal).
// Counters: kv_bytes_per_s = the K and V bytes the batch attends to (each position's 8 heads x 128
// dims x 2 bytes, K and V, counted once per sequence) / time: against the device's copy bandwidth
// (cuda_gemm_benchmark's BM_DeviceCopy, bytes_per_second / 2 for the read side), how close a
// memory-bound decode comes to its floor. Prefill also reports attention_flops_per_s (4 x head_dim
// multiply-adds per visible (query, position, head): scores and weighted V sums, fp32 on CUDA
// cores). Each iteration is one PagedAttention call and a synchronize.
//
//   build/benchmarks/cuda_attention_benchmark --benchmark_repetitions=3
//   build/benchmarks/cuda_attention_benchmark --tiny_cpu   # the benchmark itself, on the CPU
//
// --tiny_cpu runs the same code with the CPU twin at 1/32 the contexts and batches (at least 1):
// a check of the benchmark's own setup (tables, buffers, counters) where no device is; its figures
// mean nothing. The cache is zeros (the kernels' work does not depend on the values); the blocks
// of the sequences are shuffled over the cache, as a serving cache's are.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <numeric>
#include <random>
#include <string_view>
#include <vector>

#include "common/dtype.h"
#include "kernels/cuda/device_memory.h"
#include "kernels/paged_attention.h"

namespace pagoda {
namespace {

constexpr int64_t kHeads = 32;
constexpr int64_t kKvHeads = 8;
constexpr int64_t kHeadDim = 128;
constexpr int64_t kBlockSize = 16;
constexpr int64_t kCacheElementBytes = 2;  // bf16

// Where the benchmarks run: the device, or the CPU twin at shrunk sizes (--tiny_cpu).
Device g_device = Device::kCuda;
int64_t g_shrink = 1;

// Zeroed memory on g_device that frees itself.
std::shared_ptr<void> Buffer(int64_t bytes) {
  if (g_device == Device::kCpu) {
    return std::shared_ptr<void>(new std::byte[bytes](), std::default_delete<std::byte[]>());
  }
  absl::StatusOr<std::shared_ptr<void>> memory = kernels::cuda::AllocateZeroed(bytes);
  if (!memory.ok()) {
    std::fprintf(stderr, "cuda_attention_benchmark: %s\n", memory.status().ToString().c_str());
    std::exit(1);
  }
  return *std::move(memory);
}

template <typename T>
std::shared_ptr<void> Upload(const std::vector<T>& values) {
  const int64_t bytes = static_cast<int64_t>(values.size() * sizeof(T));
  std::shared_ptr<void> buffer = Buffer(bytes);
  if (g_device == Device::kCpu) {
    std::copy(values.begin(), values.end(), static_cast<T*>(buffer.get()));
  } else if (absl::Status s = kernels::cuda::CopyBytes(buffer.get(), values.data(), bytes);
             !s.ok()) {
    std::fprintf(stderr, "cuda_attention_benchmark: %s\n", s.ToString().c_str());
    std::exit(1);
  }
  return buffer;
}

// A batch of sequences with (q_len, seq_len) each, its blocks shuffled over one cache, and
// everything PagedAttention reads allocated where it runs.
struct AttentionBatch {
  std::shared_ptr<void> q, out, key_cache, value_cache, block_tables, query_start_loc, seq_lens;
  kernels::PagedAttentionParams params;
  int64_t kv_bytes = 0;       // K and V bytes of every sequence's context
  int64_t visible_pairs = 0;  // (query, position) pairs attended, per head
};

AttentionBatch MakeBatch(int64_t num_seqs, int64_t q_len, int64_t seq_len) {
  AttentionBatch b;
  const int64_t blocks_per_seq = (seq_len + kBlockSize - 1) / kBlockSize;
  const int64_t num_blocks = num_seqs * blocks_per_seq;
  const int64_t num_tokens = num_seqs * q_len;
  std::vector<int32_t> tables(num_blocks);
  std::iota(tables.begin(), tables.end(), 0);
  std::mt19937 rng(7);
  std::shuffle(tables.begin(), tables.end(), rng);
  std::vector<int32_t> starts(num_seqs + 1), lens(num_seqs, static_cast<int32_t>(seq_len));
  for (int64_t s = 0; s <= num_seqs; ++s) starts[s] = static_cast<int32_t>(s * q_len);
  const int64_t cache_bytes = num_blocks * kBlockSize * kKvHeads * kHeadDim * kCacheElementBytes;
  b.q = Buffer(num_tokens * kHeads * kHeadDim * 4);
  b.out = Buffer(num_tokens * kHeads * kHeadDim * 4);
  b.key_cache = Buffer(cache_bytes);
  b.value_cache = Buffer(cache_bytes);
  b.block_tables = Upload(tables);
  b.query_start_loc = Upload(starts);
  b.seq_lens = Upload(lens);
  b.params = {.out = static_cast<float*>(b.out.get()),
              .q = static_cast<const float*>(b.q.get()),
              .key_cache = b.key_cache.get(),
              .value_cache = b.value_cache.get(),
              .cache_dtype = DType::kBF16,
              .block_tables = static_cast<const int32_t*>(b.block_tables.get()),
              .query_start_loc = static_cast<const int32_t*>(b.query_start_loc.get()),
              .seq_lens = static_cast<const int32_t*>(b.seq_lens.get()),
              .num_seqs = num_seqs,
              .num_tokens = num_tokens,
              .num_heads = kHeads,
              .num_kv_heads = kKvHeads,
              .head_dim = kHeadDim,
              .block_size = kBlockSize,
              .num_blocks = num_blocks,
              .max_blocks_per_seq = blocks_per_seq,
              .q_stride = kHeads * kHeadDim,
              .max_query_len = q_len,
              .scale = 1.0f / 11.3137085f,  // 1 / sqrt(128)
              .block_ids_checked = true,
              .device = g_device};
  b.kv_bytes = 2 * num_seqs * seq_len * kKvHeads * kHeadDim * kCacheElementBytes;
  // Query j of a sequence sits at position seq_len - q_len + j and sees that many + 1 positions.
  for (int64_t j = 0; j < q_len; ++j) b.visible_pairs += num_seqs * (seq_len - q_len + j + 1);
  return b;
}

void RunAttention(benchmark::State& state, const AttentionBatch& b) {
  for (auto _ : state) {
    absl::Status s = kernels::PagedAttention(b.params);
    if (s.ok() && g_device == Device::kCuda) s = kernels::cuda::Synchronize();
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      return;
    }
  }
  state.counters["kv_bytes_per_s"] = benchmark::Counter(
      static_cast<double>(b.kv_bytes), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_AttentionDecode(benchmark::State& state) {
  const int64_t batch = std::max<int64_t>(1, state.range(0) / g_shrink);
  const int64_t context = std::max<int64_t>(1, state.range(1) / g_shrink);
  const AttentionBatch b = MakeBatch(batch, 1, context);
  RunAttention(state, b);
}
BENCHMARK(BM_AttentionDecode)
    ->ArgNames({"batch", "context"})
    ->Args({64, 1024})
    ->Args({8, 8192})
    ->Args({256, 1024})
    ->Args({1, 8192})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

void BM_AttentionPrefill(benchmark::State& state) {
  const int64_t tokens = std::max<int64_t>(1, state.range(0) / g_shrink);
  const AttentionBatch b = MakeBatch(1, tokens, tokens);
  RunAttention(state, b);
  state.counters["attention_flops_per_s"] =
      benchmark::Counter(static_cast<double>(4 * kHeadDim * kHeads * b.visible_pairs),
                         benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_AttentionPrefill)
    ->ArgName("tokens")
    ->Arg(1024)
    ->Arg(8192)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace pagoda

int main(int argc, char** argv) {
  // --tiny_cpu (ours) is taken out before Google Benchmark sees the flags.
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--tiny_cpu") {
      pagoda::g_device = pagoda::Device::kCpu;
      pagoda::g_shrink = 32;
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  if (pagoda::g_device == pagoda::Device::kCuda && pagoda::kernels::cuda::DeviceCount() == 0) {
    std::printf(
        "cuda_attention_benchmark: no CUDA device; nothing to measure (--tiny_cpu checks "
        "the benchmark on the CPU)\n");
    return 0;
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
