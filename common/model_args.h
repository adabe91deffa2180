// ModelArgs: the flags that say how a worker keeps a model in memory — the weights' type
// (--dtype), the KV cache's (--kv-cache-dtype) and how the ranks share a mixture of experts
// (--enable-expert-parallel) — registered in one place for every command that loads one:
// pagoda-worker, pagoda generate, pagoda bench throughput, and pagoda serve (which passes them on
// to its workers). Validated once into a ModelMemoryConfig.
//
//   --dtype auto|float32|bfloat16|float16   safetensors (and dummy) weights; auto = the
//                                            checkpoint's torch_dtype (dummy: float32); a GGUF
//                                            file keeps its own types and accepts only auto
//   --kv-cache-dtype auto|float32|bfloat16  auto = float32 on the CPU
//   --enable-expert-parallel                 each tensor-parallel rank holds whole experts (E / T
//                                            of them) instead of a slice of every expert; as in
//                                            vLLM, accepted and without effect on dense models
//                                            and at one rank
//   --device auto|cpu|cuda                   where the model runs; auto = a CUDA device when the
//                                            build has the CUDA backend and one is visible, else
//                                            the CPU (resolved by the worker:
//                                            worker/device_selection.h)
//   --gpu-memory-utilization F               in (0, 1], default 0.9: the share of the device's
//                                            memory a CUDA worker may use (weights, activations
//                                            and the KV cache together); no effect on the CPU
//   --enforce-eager                          CUDA: run every step eagerly, capturing no CUDA
//                                            graphs (vLLM's flag); no effect on the CPU
//
//   ModelArgs model_args;
//   model_args.Register(parser);
//   RETURN_IF_ERROR(parser.Parse(argc, argv));
//   ASSIGN_OR_RETURN(const ModelMemoryConfig memory, model_args.Build());  // errors name the flag
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/arg_parser.h"
#include "common/dtype.h"

namespace pagoda {

/// --device as asked (common/ knows no kernels::Device; the worker resolves kAuto).
enum class DeviceChoice : uint8_t { kAuto, kCpu, kCuda };

struct ModelMemoryConfig {
  std::optional<DType> weight_dtype;   // nullopt: auto
  DType kv_cache_dtype = DType::kF32;  // kF32 or kBF16
  bool expert_parallel = false;        // TensorParallelShard::expert_parallel
  DeviceChoice device = DeviceChoice::kAuto;
  double gpu_memory_utilization = 0.9;  // (0, 1]
  bool enforce_eager = false;           // CUDA: no CUDA graphs
};

struct ModelArgs {
  std::string dtype = "auto";
  std::string kv_cache_dtype = "auto";
  bool enable_expert_parallel = false;
  std::string device = "auto";
  double gpu_memory_utilization = 0.9;
  bool enforce_eager = false;

  void Register(ArgParser& parser);
  absl::StatusOr<ModelMemoryConfig> Build() const;
  /// The flags given on `parser`'s command line ("--name=value"): what pagoda serve passes on to
  /// its workers.
  std::vector<std::string> GivenFlags(const ArgParser& parser) const;
};

/// "auto" (nullopt), "float32", "bfloat16", "float16" (also "float", "fp32", "bf16", "half",
/// "fp16"); InvalidArgument naming --dtype otherwise.
absl::StatusOr<std::optional<DType>> ParseWeightDType(std::string_view value);

/// "auto" (F32 on the CPU), "float32", "bfloat16" (also "fp32", "bf16"); InvalidArgument naming
/// --kv-cache-dtype otherwise.
absl::StatusOr<DType> ParseKvCacheDType(std::string_view value);

/// "auto", "cpu", "cuda" (any case; "gpu" is cuda); InvalidArgument naming --device otherwise.
absl::StatusOr<DeviceChoice> ParseDeviceChoice(std::string_view value);

}  // namespace pagoda
