// kernels::Gemm with weights in each DType a real checkpoint uses, at SmolLM2-135M's projection
// shapes (k = 576, n = 1536: the MLP up/gate projection; k = 1536, n = 576: the down projection)
// and m = 1 and 32 activation rows (decode batches). bytes_per_second counts the weight bytes
// read (the stored, quantized size), so it compares directly with the copy bandwidth measured in
// the same run. These weights (0.5 to 3.5 MB) stay in the last-level cache across iterations:
// the figures are the kernels' rates, the decode-step benchmark the memory-bound ones.
//
//   build/benchmarks/gemm_dtypes_benchmark --benchmark_repetitions=3
//   build/benchmarks/gemm_dtypes_benchmark --benchmark_filter='GemmDType/dtype:4'
#include <benchmark/benchmark.h>

#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/dtype.h"
#include "kernels/cpu/internal/cpu_isa.h"
#include "kernels/cpu/internal/dequantizing_gemm.h"
#include "kernels/cpu/internal/half_gemm.h"
#include "kernels/dequantize.h"
#include "kernels/gemm.h"

namespace pagoda::kernels {
namespace {

// New dtypes last, so that the older dtype indices in docs/performance.md's filters stay valid.
constexpr DType kDTypes[] = {DType::kF32,  DType::kBF16, DType::kQ8_0, DType::kQ4_1,
                             DType::kQ4_K, DType::kQ6_K, DType::kQ5_K, DType::kF16};

// Offsets of the float16 scale fields in a block (ggml-common.h), set to small finite values so
// that the random quant bytes around them make finite weights.
std::vector<int> HalfFields(DType dtype) {
  switch (dtype) {
    case DType::kQ8_0:
      return {0};
    case DType::kQ4_1:
    case DType::kQ4_K:
    case DType::kQ5_K:
      return {0, 2};
    case DType::kQ6_K:
      return {208};
    default:
      return {};
  }
}

std::vector<uint8_t> RandomWeights(DType dtype, int64_t n, int64_t k) {
  std::mt19937 rng(1);
  const DTypeTraits& t = Traits(dtype);
  std::vector<uint8_t> w(static_cast<size_t>(n * k / t.block_elements * t.block_bytes));
  if (!t.quantized) {
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    std::vector<float> f(static_cast<size_t>(n * k));
    for (float& x : f) x = uniform(rng);
    if (!Quantize({.dtype = dtype, .src = f.data(), .dst = w.data(), .num_elements = n * k}).ok()) {
      w.clear();
    }
    return w;
  }
  std::uniform_int_distribution<int> byte(0, 255);
  for (uint8_t& x : w) x = static_cast<uint8_t>(byte(rng));
  const uint16_t scale = 0x2C00;  // 1/16 as float16
  for (size_t block = 0; block < w.size(); block += t.block_bytes) {
    for (int offset : HalfFields(dtype)) std::memcpy(&w[block + offset], &scale, sizeof(scale));
  }
  return w;
}

// Reference: a 256 MiB memcpy, counted as bytes read + bytes written per second.
void BM_CopyBandwidth(benchmark::State& state) {
  const size_t bytes = size_t{256} << 20;
  std::vector<char> src(bytes, 1), dst(bytes, 0);
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), bytes);
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * 2 * bytes));
}
BENCHMARK(BM_CopyBandwidth)->Unit(benchmark::kMillisecond)->UseRealTime();

// The ceiling of a weight-streaming decode: 256 MiB read (nothing written) by Arg(0) threads,
// each summing its contiguous share with eight independent accumulators. bytes_per_second counts
// the bytes read; compare it with BM_CopyBandwidth (reads plus writes) and with a decode step's
// weight bytes per second.
void BM_ReadBandwidth(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  const size_t words = (size_t{256} << 20) / sizeof(uint64_t);
  std::vector<uint64_t> data(words);
  for (size_t i = 0; i < words; ++i) data[i] = i;
  std::vector<uint64_t> sums(static_cast<size_t>(threads));
  const auto read = [&](int t) {
    const size_t begin = words * static_cast<size_t>(t) / static_cast<size_t>(threads);
    const size_t end = words * static_cast<size_t>(t + 1) / static_cast<size_t>(threads);
    uint64_t acc[8] = {};
    size_t i = begin;
    for (; i + 8 <= end; i += 8) {
      for (int l = 0; l < 8; ++l) acc[l] += data[i + static_cast<size_t>(l)];
    }
    for (; i < end; ++i) acc[0] += data[i];
    uint64_t sum = 0;
    for (uint64_t a : acc) sum += a;
    sums[static_cast<size_t>(t)] = sum;
  };
  for (auto _ : state) {
    std::vector<std::thread> pool;
    for (int t = 1; t < threads; ++t) pool.emplace_back(read, t);
    read(0);
    for (std::thread& thread : pool) thread.join();
    benchmark::DoNotOptimize(sums.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * words * sizeof(uint64_t)));
}
BENCHMARK(BM_ReadBandwidth)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

// Args: dtype (index into kDTypes), m, n, k.
void BM_GemmDType(benchmark::State& state) {
  const DType dtype = kDTypes[state.range(0)];
  const int64_t m = state.range(1), n = state.range(2), k = state.range(3);
  if (k % Traits(dtype).block_elements != 0) {
    // SmolLM2's hidden size, 576, is not a whole number of 256-element K-quant blocks: GGUF
    // files store the rows of such projections in Q5_0/Q8_0 instead.
    state.SkipWithError("k is not a whole number of this dtype's blocks");
    return;
  }
  const std::vector<uint8_t> w = RandomWeights(dtype, n, k);
  if (w.empty()) {
    state.SkipWithError("could not make the weights");
    return;
  }
  std::vector<float> a(static_cast<size_t>(m * k), 0.5f), c(static_cast<size_t>(m * n));
  const GemmParams p{
      .a = a.data(), .b = w.data(), .b_dtype = dtype, .c = c.data(), .m = m, .n = n, .k = k};
  for (auto _ : state) {
    if (!Gemm(p).ok()) state.SkipWithError("Gemm failed");
    benchmark::DoNotOptimize(c.data());
  }
  state.SetLabel(std::string(DTypeName(dtype)));
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(w.size()));
  state.counters["flops"] = benchmark::Counter(
      2.0 * static_cast<double>(m * n * k) * static_cast<double>(state.iterations()),
      benchmark::Counter::kIsRate);
}

void Shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"dtype", "m", "n", "k"});
  for (int64_t d = 0; d < static_cast<int64_t>(std::size(kDTypes)); ++d) {
    for (int64_t m : {1, 2, 4, 8, 32, 512}) {
      b->Args({d, m, 1536, 576});
      b->Args({d, m, 576, 1536});
    }
  }
  b->Unit(benchmark::kMicrosecond)->UseRealTime();
}
BENCHMARK(BM_GemmDType)->Apply(Shapes);

// The two CPU paths for 16-bit float weights side by side: path 0 is the register-converting
// kernel kernels::Gemm dispatches to (half_gemm.h, on the configured ISA), path 1 the
// dequantizing GEMM it replaced (dequantizing_gemm.h: an L1 buffer at m = 1, panels and OpenBLAS
// sgemm above). Args: dtype (0 = F16, 1 = BF16), path, m, n, k; all but the last shape stay in
// the cache.
void BM_HalfGemmPath(benchmark::State& state) {
  const DType dtype = state.range(0) == 0 ? DType::kF16 : DType::kBF16;
  const bool dequantizing = state.range(1) == 1;
  const int64_t m = state.range(2), n = state.range(3), k = state.range(4);
  const absl::StatusOr<internal::CpuKernelConfig>& config = internal::ActiveCpuKernelConfig();
  const std::vector<uint8_t> w = RandomWeights(dtype, n, k);
  if (!config.ok() || w.empty()) {
    state.SkipWithError("bad PAGODA_CPU_ISA, or could not make the weights");
    return;
  }
  std::vector<float> a(static_cast<size_t>(m * k), 0.5f), c(static_cast<size_t>(m * n));
  const GemmParams p{
      .a = a.data(), .b = w.data(), .b_dtype = dtype, .c = c.data(), .m = m, .n = n, .k = k};
  for (auto _ : state) {
    if (dequantizing) {
      internal::DequantizingGemm(p);
    } else {
      internal::HalfGemm(p, config->isa);
    }
    benchmark::DoNotOptimize(c.data());
  }
  state.SetLabel(absl::StrCat(std::string(DTypeName(dtype)), " ",
                              dequantizing
                                  ? std::string("dequantizing")
                                  : "half_gemm " + std::string(internal::CpuIsaName(config->isa))));
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(w.size()));
  state.counters["flops"] = benchmark::Counter(
      2.0 * static_cast<double>(m * n * k) * static_cast<double>(state.iterations()),
      benchmark::Counter::kIsRate);
}
BENCHMARK(BM_HalfGemmPath)
    ->ArgNames({"dtype", "path", "m", "n", "k"})
    ->ArgsProduct({{0, 1}, {0, 1}, {1, 4, 16, 64, 512}, {1536}, {576}})
    ->ArgsProduct({{0, 1}, {0, 1}, {1, 4, 16, 64, 512}, {576}, {1536}})
    // SmolLM2's LM head (56 MB in F16, above the last-level cache): the rate from memory.
    ->ArgsProduct({{0, 1}, {0, 1}, {1}, {49152}, {576}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

// Weights in `dtype` as stored (path 0) and packed at load for the AVX-512 kernel (path 1,
// kernels::PackGemmWeights; skipped where this CPU's configuration has no packed layout), side
// by side. Args: path, m, n, k; the LM head shape (28 MB in Q8_0) streams from memory.
void RunGemmPacked(benchmark::State& state, DType dtype) {
  const bool packed = state.range(0) == 1;
  const int64_t m = state.range(1), n = state.range(2), k = state.range(3);
  const std::vector<uint8_t> w = RandomWeights(dtype, n, k);
  const int64_t packed_bytes = PackedGemmWeightBytes(dtype, n, k);
  if (packed && packed_bytes == 0) {
    state.SkipWithError("no packed layout for this dtype in this CPU kernel configuration");
    return;
  }
  std::vector<uint8_t> p_w(static_cast<size_t>(packed_bytes));
  if (packed && !PackGemmWeights(w.data(), dtype, n, k, p_w.data()).ok()) {
    state.SkipWithError("PackGemmWeights failed");
    return;
  }
  std::vector<float> a(static_cast<size_t>(m * k), 0.5f), c(static_cast<size_t>(m * n));
  const GemmParams p{.a = a.data(),
                     .b = w.data(),
                     .b_dtype = dtype,
                     .b_packed = packed ? p_w.data() : nullptr,
                     .c = c.data(),
                     .m = m,
                     .n = n,
                     .k = k};
  for (auto _ : state) {
    if (!Gemm(p).ok()) state.SkipWithError("Gemm failed");
    benchmark::DoNotOptimize(c.data());
  }
  state.SetLabel(packed ? "packed" : "stored");
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(w.size()));
}
void BM_GemmQ8_0Packed(benchmark::State& state) { RunGemmPacked(state, DType::kQ8_0); }
void BM_GemmQ4_1Packed(benchmark::State& state) { RunGemmPacked(state, DType::kQ4_1); }
BENCHMARK(BM_GemmQ8_0Packed)
    ->ArgNames({"path", "m", "n", "k"})
    ->ArgsProduct({{0, 1}, {1, 4, 32, 512}, {1536}, {576}})
    ->ArgsProduct({{0, 1}, {1, 4}, {576}, {1536}})
    ->ArgsProduct({{0, 1}, {1}, {49152}, {576}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

BENCHMARK(BM_GemmQ4_1Packed)
    ->ArgNames({"path", "m", "n", "k"})
    ->ArgsProduct({{0, 1}, {1, 4, 16, 512}, {1536}, {576}})
    ->ArgsProduct({{0, 1}, {1, 4}, {576}, {1536}})
    ->ArgsProduct({{0, 1}, {1}, {49152}, {576}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

// The packed Q4_1 GEMM at a speculative verification step's rows (k + 1 = 8 and 13 for k = 7 and
// 12 proposed tokens; 4 and 16 around them) on SmolLM2-135M's four projections as the model runs
// them: q, k and v fused (960 x 576), o (576 x 576), gate and up fused (3072 x 576), down
// (576 x 1536). Args: path (1: packed), m, n, k.
BENCHMARK(BM_GemmQ4_1Packed)
    ->Name("BM_GemmQ4_1PackedVerify")
    ->ArgNames({"path", "m", "n", "k"})
    ->ArgsProduct({{1}, {4, 8, 13, 16}, {960, 576, 3072}, {576}})
    ->ArgsProduct({{1}, {4, 8, 13, 16}, {576}, {1536}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

// The packed Q8_0 GEMM on SmolLM2-135M's LM head (49152 x 576, 28 MB) at a speculative
// verification step's rows: from 5 rows on the passes of a few rows each (packed_gemm.cc).
BENCHMARK(BM_GemmQ8_0Packed)
    ->Name("BM_GemmQ8_0PackedVerify")
    ->ArgNames({"path", "m", "n", "k"})
    ->ArgsProduct({{1}, {1, 4, 5, 8, 9, 13, 16}, {49152}, {576}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

}  // namespace
}  // namespace pagoda::kernels
