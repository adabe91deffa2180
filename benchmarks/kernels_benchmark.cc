// Throughput of the CPU kernels at SmolLM2-135M shapes (hidden 576, MLP 1536, 9 query heads,
// 3 KV heads, head_dim 64), beside the machine's memory bandwidth as the floor reference.
// Rates are Google Benchmark counters: bytes_per_second, FLOP/s ("flops"), KV bytes/s.
//
//   build/benchmarks/kernels_benchmark --benchmark_repetitions=3 --benchmark_report_aggregates_only
//   OMP_NUM_THREADS=1 build/benchmarks/kernels_benchmark --benchmark_filter=Attention
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/activation.h"
#include "kernels/gemm.h"
#include "kernels/paged_attention.h"
#include "kernels/rms_norm.h"

namespace pagoda::kernels {
namespace {

constexpr int64_t kHidden = 576;
constexpr int64_t kIntermediate = 1536;
constexpr int64_t kVocab = 49152;
constexpr int64_t kHeads = 9;
constexpr int64_t kKvHeads = 3;
constexpr int64_t kHeadDim = 64;
constexpr int64_t kBlockSize = 16;

std::vector<float> Random(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = uniform(rng);
  return v;
}

void Rate(benchmark::State& state, const char* name, double per_iteration) {
  state.counters[name] = benchmark::Counter(per_iteration * static_cast<double>(state.iterations()),
                                            benchmark::Counter::kIsRate);
}

// Single-threaded memcpy of 512 MiB: bytes_per_second counts bytes copied; rw_bytes_per_second
// counts reads plus writes (the traffic a weight-streaming decode is bounded by).
void BM_MemoryBandwidth(benchmark::State& state) {
  const size_t bytes = size_t{512} << 20;
  std::vector<char> src(bytes, 1), dst(bytes, 0);
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), bytes);
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
  Rate(state, "rw_bytes_per_second", 2.0 * static_cast<double>(bytes));
}
BENCHMARK(BM_MemoryBandwidth)->Unit(benchmark::kMillisecond)->UseRealTime();

// C[m, n] = A[m, k] B[n, k]^T. Args: m, n, k. bytes_per_second counts the weight bytes read.
void BM_Gemm(benchmark::State& state) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  const std::vector<float> a = Random(m * k, 1), b = Random(n * k, 2);
  std::vector<float> c(static_cast<size_t>(m * n));
  const GemmParams p{.a = a.data(), .b = b.data(), .c = c.data(), .m = m, .n = n, .k = k};
  for (auto _ : state) {
    if (!Gemm(p).ok()) state.SkipWithError("Gemm failed");
    benchmark::DoNotOptimize(c.data());
  }
  Rate(state, "flops", 2.0 * static_cast<double>(m * n * k));
  state.SetBytesProcessed(state.iterations() * n * k * static_cast<int64_t>(sizeof(float)));
}
// The same shapes through OpenBLAS sgemm directly: the baseline kernels::Gemm must beat where
// it does not call it (the skinny decode shapes).
void BM_BlasSgemm(benchmark::State& state) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  const std::vector<float> a = Random(m * k, 1), b = Random(n * k, 2);
  std::vector<float> c(static_cast<size_t>(m * n));
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(m),
                static_cast<blasint>(n), static_cast<blasint>(k), 1.0f, a.data(),
                static_cast<blasint>(k), b.data(), static_cast<blasint>(k), 0.0f, c.data(),
                static_cast<blasint>(n));
    benchmark::DoNotOptimize(c.data());
  }
  Rate(state, "flops", 2.0 * static_cast<double>(m * n * k));
  state.SetBytesProcessed(state.iterations() * n * k * static_cast<int64_t>(sizeof(float)));
}

void GemmShapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"m", "n", "k"})
      ->Args({512, kIntermediate, kHidden})  // prefill MLP up-projection
      ->Args({1, kIntermediate, kHidden})    // decode, batch 1 (gemv)
      ->Args({1, kVocab, kHidden})           // decode LM head: 113 MB of weights, memory-bound
      ->Args({8, kVocab, kHidden})           // decode LM head, batch 8 (largest skinny m)
      ->Args({16, kVocab, kHidden})          // decode LM head, batch 16 (BLAS)
      ->Args({32, kIntermediate, kHidden})   // decode, batch 32
      ->Args({32, kVocab, kHidden})          // decode LM head, batch 32
      ->Unit(benchmark::kMicrosecond)
      ->UseRealTime();
}
BENCHMARK(BM_Gemm)->Apply(GemmShapes);
BENCHMARK(BM_BlasSgemm)->Apply(GemmShapes);

// A batch of sequences in a shuffled paged cache. Args: batch, context (seq_len), q_len, the
// cache's dtype (0: fp32, 1: bfloat16, what `pagoda serve --kv-cache-dtype bfloat16` keeps), and
// the keys' layout (0: rows, 1: transposed, the CPU's where PrefersTransposedKeys: skipped where
// it is not).
void BM_PagedAttention(benchmark::State& state) {
  const int64_t batch = state.range(0), context = state.range(1), q_len = state.range(2);
  const bool bf16 = state.range(3) == 1;
  const bool transposed = state.range(4) == 1;
  if (transposed && !PrefersTransposedKeys(Device::kCpu, kBlockSize)) {
    state.SkipWithError("this CPU's attention reads keys as rows");
    return;
  }
  const int64_t blocks_per_seq = (context + kBlockSize - 1) / kBlockSize;
  const int64_t num_blocks = batch * blocks_per_seq;
  const int64_t row = kKvHeads * kHeadDim;
  const std::vector<float> key_cache = Random(num_blocks * kBlockSize * row, 1);
  const std::vector<float> value_cache = Random(num_blocks * kBlockSize * row, 2);
  // The bfloat16 caches: the fp32 values' top halves (truncated; any values do here).
  std::vector<uint16_t> key_bf16(key_cache.size()), value_bf16(value_cache.size());
  for (size_t i = 0; i < key_cache.size(); ++i) {
    uint32_t k, v;
    std::memcpy(&k, &key_cache[i], sizeof(k));
    std::memcpy(&v, &value_cache[i], sizeof(v));
    key_bf16[i] = static_cast<uint16_t>(k >> 16);
    value_bf16[i] = static_cast<uint16_t>(v >> 16);
  }
  std::vector<int32_t> block_tables(static_cast<size_t>(num_blocks));
  std::iota(block_tables.begin(), block_tables.end(), 0);
  std::shuffle(block_tables.begin(), block_tables.end(), std::mt19937(3));
  std::vector<int32_t> query_start_loc(static_cast<size_t>(batch + 1)), seq_lens(batch, context);
  for (int64_t s = 0; s <= batch; ++s) query_start_loc[s] = static_cast<int32_t>(s * q_len);
  const int64_t num_tokens = batch * q_len;
  const std::vector<float> q = Random(num_tokens * kHeads * kHeadDim, 4);
  std::vector<float> out(q.size());
  const PagedAttentionParams p{
      .out = out.data(),
      .q = q.data(),
      .key_cache = bf16 ? static_cast<const void*>(key_bf16.data()) : key_cache.data(),
      .value_cache = bf16 ? static_cast<const void*>(value_bf16.data()) : value_cache.data(),
      .cache_dtype = bf16 ? DType::kBF16 : DType::kF32,
      .block_tables = block_tables.data(),
      .query_start_loc = query_start_loc.data(),
      .seq_lens = seq_lens.data(),
      .num_seqs = batch,
      .num_tokens = num_tokens,
      .num_heads = kHeads,
      .num_kv_heads = kKvHeads,
      .head_dim = kHeadDim,
      .block_size = kBlockSize,
      .num_blocks = num_blocks,
      .max_blocks_per_seq = blocks_per_seq,
      .q_stride = kHeads * kHeadDim,
      .keys_transposed = transposed,
      .scale = 1.0f / std::sqrt(static_cast<float>(kHeadDim))};
  for (auto _ : state) {
    if (!PagedAttention(p).ok()) state.SkipWithError("PagedAttention failed");
    benchmark::DoNotOptimize(out.data());
  }
  // Positions attended, summed over query tokens (causal within the chunk).
  const double attended =
      static_cast<double>(batch) * (q_len * (context - q_len) + q_len * (q_len + 1) / 2.0);
  Rate(state, "flops", 4.0 * attended * kHeads * kHeadDim);  // QK^T and PV multiply-adds
  Rate(state, "kv_bytes_per_second",
       static_cast<double>(batch * context * 2 * row * (bf16 ? 2 : 4)));
}
BENCHMARK(BM_PagedAttention)
    ->ArgNames({"batch", "context", "q_len", "bf16", "transposed"})
    ->ArgsProduct({{1}, {512}, {1}, {0}, {0, 1}})    // decode, batch 1
    ->ArgsProduct({{32}, {512}, {1}, {0}, {0, 1}})   // decode, batch 32
    ->ArgsProduct({{16}, {320}, {1}, {1}, {0, 1}})   // decode, batch 16, bfloat16: serving's
    ->ArgsProduct({{1}, {512}, {8}, {0}, {0, 1}})    // a verification of 7 proposed tokens
    ->ArgsProduct({{1}, {512}, {13}, {0}, {0, 1}})   // and of 12 (speculative.sh's k)
    ->ArgsProduct({{1}, {512}, {512}, {0}, {0, 1}})  // prefill of 512 tokens
    ->ArgsProduct({{1}, {4096}, {1}, {0}, {0, 1}})   // decode at a long context
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

void BM_RmsNorm(benchmark::State& state) {
  const int64_t tokens = state.range(0);
  const std::vector<float> x = Random(tokens * kHidden, 1), w = Random(kHidden, 2);
  std::vector<float> out(x.size());
  for (auto _ : state) {
    if (!RmsNorm({.input = x.data(),
                  .weight = w.data(),
                  .output = out.data(),
                  .num_tokens = tokens,
                  .hidden_size = kHidden})
             .ok()) {
      state.SkipWithError("RmsNorm failed");
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(state.iterations() * tokens * kHidden * 2 * 4);
}
BENCHMARK(BM_RmsNorm)->ArgName("tokens")->Arg(1)->Arg(13)->Arg(512)->UseRealTime();

void BM_SiluAndMul(benchmark::State& state) {
  const int64_t tokens = state.range(0);
  const std::vector<float> in = Random(tokens * 2 * kIntermediate, 1);
  std::vector<float> out(static_cast<size_t>(tokens * kIntermediate));
  for (auto _ : state) {
    if (!SiluAndMul(
             {.input = in.data(), .output = out.data(), .num_tokens = tokens, .d = kIntermediate})
             .ok()) {
      state.SkipWithError("SiluAndMul failed");
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(state.iterations() * tokens * kIntermediate * 3 * 4);
}
BENCHMARK(BM_SiluAndMul)->ArgName("tokens")->Arg(1)->Arg(4)->Arg(13)->Arg(512)->UseRealTime();

}  // namespace
}  // namespace pagoda::kernels
