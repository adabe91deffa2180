// The device GEMM (cuBLAS, kernels/cuda/gemm.h) on the projections of a Llama-3-8B decode step,
// beside the device's copy bandwidth measured in the same run: how close the weight-bound GEMMs
// of a step come to their floor (weight bytes ÷ copy bandwidth) before the rest of the model runs
// on the device. Run by scripts/gpu-check.sh --run; exits at once without a device.
//
//   build/benchmarks/cuda_gemm_benchmark --benchmark_repetitions=3
//
// BM_DeviceCopy: a device-to-device copy of 1 GiB; bytes_per_second counts the bytes read and
// written. BM_Llama8BStepGemms/m: one step's GEMMs at m tokens — per layer qkv (4096 → 6144),
// o (4096 → 4096), gate_up (4096 → 28672) and down (14336 → 4096), 32 layers (one layer's
// weights, used 32 times: each GEMM streams 12–235 MB, far past the 60 MB L2), then the LM head
// (4096 → 128256); bf16 weights (dtype=1) or fp32 (dtype=0). weight_bytes_per_second = weight
// bytes of the step ÷ time: against BM_DeviceCopy's bytes_per_second ÷ 2 (a copy reads and
// writes), the step's floor.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <vector>

#include "common/dtype.h"
#include "kernels/cuda/device_memory.h"
#include "kernels/gemm.h"

namespace pagoda {
namespace {

using kernels::cuda::AllocateZeroed;

std::shared_ptr<void> DeviceBytes(int64_t bytes) {
  absl::StatusOr<std::shared_ptr<void>> memory = AllocateZeroed(bytes);
  if (!memory.ok()) {
    std::fprintf(stderr, "cuda_gemm_benchmark: %s\n", memory.status().ToString().c_str());
    std::exit(1);
  }
  return *std::move(memory);
}

void Check(const absl::Status& status, benchmark::State& state) {
  if (!status.ok()) state.SkipWithError(status.ToString().c_str());
}

void BM_DeviceCopy(benchmark::State& state) {
  constexpr int64_t kBytes = int64_t{1} << 30;
  std::shared_ptr<void> from = DeviceBytes(kBytes), to = DeviceBytes(kBytes);
  for (auto _ : state) Check(kernels::cuda::CopyBytes(to.get(), from.get(), kBytes), state);
  state.SetBytesProcessed(2 * kBytes * state.iterations());
}
BENCHMARK(BM_DeviceCopy)->UseRealTime()->Unit(benchmark::kMillisecond);

struct Projection {
  int64_t n, k;
};

void BM_Llama8BStepGemms(benchmark::State& state) {
  const int64_t m = state.range(0);
  const DType dtype = state.range(1) == 1 ? DType::kBF16 : DType::kF32;
  const int64_t element = dtype == DType::kBF16 ? 2 : 4;
  constexpr int kLayers = 32;
  const std::vector<Projection> layer = {{6144, 4096}, {4096, 4096}, {28672, 4096}, {4096, 14336}};
  const Projection head{128256, 4096};
  std::vector<std::shared_ptr<void>> weights;
  int64_t layer_bytes = 0, widest = head.n, deepest = 14336;
  for (const Projection& p : layer) {
    weights.push_back(DeviceBytes(p.n * p.k * element));
    layer_bytes += p.n * p.k * element;
  }
  std::shared_ptr<void> head_weights = DeviceBytes(head.n * head.k * element);
  std::shared_ptr<void> a = DeviceBytes(m * deepest * 4), c = DeviceBytes(m * widest * 4);
  auto gemm = [&](const void* b, const Projection& p) {
    return kernels::Gemm({.a = static_cast<const float*>(a.get()),
                          .b = b,
                          .b_dtype = dtype,
                          .c = static_cast<float*>(c.get()),
                          .m = m,
                          .n = p.n,
                          .k = p.k,
                          .device = Device::kCuda});
  };
  for (auto _ : state) {
    for (int l = 0; l < kLayers; ++l) {
      for (size_t i = 0; i < layer.size(); ++i) Check(gemm(weights[i].get(), layer[i]), state);
    }
    Check(gemm(head_weights.get(), head), state);
    Check(kernels::cuda::Synchronize(), state);
  }
  const double step_bytes = static_cast<double>(kLayers * layer_bytes + head.n * head.k * element);
  state.counters["weight_bytes_per_second"] = benchmark::Counter(
      step_bytes * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["weight_GB"] = step_bytes / 1e9;
}
BENCHMARK(BM_Llama8BStepGemms)
    ->ArgsProduct({{1, 64, 256}, {1, 0}})
    ->ArgNames({"m", "bf16"})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace pagoda

int main(int argc, char** argv) {
  if (pagoda::kernels::cuda::DeviceCount() == 0) {
    std::printf("cuda_gemm_benchmark: no CUDA device; nothing to measure\n");
    return 0;
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
