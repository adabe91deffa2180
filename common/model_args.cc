#include "common/model_args.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace pagoda {

absl::StatusOr<std::optional<DType>> ParseWeightDType(std::string_view value) {
  const std::string v = absl::AsciiStrToLower(std::string(value));
  if (v == "auto") return std::optional<DType>();
  if (v == "float32" || v == "float" || v == "fp32") return std::optional<DType>(DType::kF32);
  if (v == "bfloat16" || v == "bf16") return std::optional<DType>(DType::kBF16);
  if (v == "float16" || v == "half" || v == "fp16") return std::optional<DType>(DType::kF16);
  return absl::InvalidArgumentError(absl::StrCat(
      "--dtype must be auto, float32, bfloat16 or float16, got '", std::string(value), "'"));
}

absl::StatusOr<DType> ParseKvCacheDType(std::string_view value) {
  const std::string v = absl::AsciiStrToLower(std::string(value));
  if (v == "auto" || v == "float32" || v == "float" || v == "fp32") return DType::kF32;
  if (v == "bfloat16" || v == "bf16") return DType::kBF16;
  return absl::InvalidArgumentError(absl::StrCat(
      "--kv-cache-dtype must be auto, float32 or bfloat16, got '", std::string(value), "'"));
}

absl::StatusOr<DeviceChoice> ParseDeviceChoice(std::string_view value) {
  const std::string v = absl::AsciiStrToLower(std::string(value));
  if (v == "auto") return DeviceChoice::kAuto;
  if (v == "cpu") return DeviceChoice::kCpu;
  if (v == "cuda" || v == "gpu") return DeviceChoice::kCuda;
  return absl::InvalidArgumentError(
      absl::StrCat("--device must be auto, cpu or cuda, got '", std::string(value), "'"));
}

void ModelArgs::Register(ArgParser& parser) {
  parser.AddString("dtype", &dtype,
                   "Weight type of safetensors (and dummy) models: auto (the checkpoint's "
                   "torch_dtype; dummy: float32), float32, bfloat16, float16. GGUF files keep "
                   "their own types");
  parser.AddString("kv-cache-dtype", &kv_cache_dtype,
                   "KV cache type: auto (float32 on the CPU), float32, bfloat16");
  parser.AddBool("enable-expert-parallel", &enable_expert_parallel,
                 "Mixture-of-experts models: each tensor-parallel rank holds whole experts "
                 "(num_experts / tp of them, which must divide) instead of a slice of every "
                 "expert. No effect on dense models or at --tp 1");
  parser.AddString("device", &device,
                   "Where the model runs: auto (a CUDA device if this build has the CUDA backend "
                   "and one is visible, else the CPU), cpu, cuda");
  parser.AddDouble("gpu-memory-utilization", &gpu_memory_utilization,
                   "Share of a CUDA device's memory a worker may use for its weights, "
                   "activations and KV cache, in (0, 1]; no effect on the CPU");
  parser.AddBool("enforce-eager", &enforce_eager,
                 "CUDA: run every step eagerly instead of replaying CUDA graphs of decode "
                 "batches captured at start-up; no effect on the CPU");
}

absl::StatusOr<ModelMemoryConfig> ModelArgs::Build() const {
  ModelMemoryConfig config;
  ASSIGN_OR_RETURN(config.weight_dtype, ParseWeightDType(dtype));
  ASSIGN_OR_RETURN(config.kv_cache_dtype, ParseKvCacheDType(kv_cache_dtype));
  config.expert_parallel = enable_expert_parallel;
  ASSIGN_OR_RETURN(config.device, ParseDeviceChoice(device));
  if (!(gpu_memory_utilization > 0 && gpu_memory_utilization <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--gpu-memory-utilization must be in (0, 1], got ", gpu_memory_utilization));
  }
  config.gpu_memory_utilization = gpu_memory_utilization;
  config.enforce_eager = enforce_eager;
  return config;
}

std::vector<std::string> ModelArgs::GivenFlags(const ArgParser& parser) const {
  std::vector<std::string> flags;
  if (parser.WasSet("dtype")) flags.push_back(absl::StrCat("--dtype=", dtype));
  if (parser.WasSet("kv-cache-dtype")) {
    flags.push_back(absl::StrCat("--kv-cache-dtype=", kv_cache_dtype));
  }
  if (enable_expert_parallel) flags.push_back("--enable-expert-parallel");
  if (parser.WasSet("device")) flags.push_back(absl::StrCat("--device=", device));
  if (parser.WasSet("gpu-memory-utilization")) {
    flags.push_back(absl::StrCat("--gpu-memory-utilization=", gpu_memory_utilization));
  }
  if (enforce_eager) flags.push_back("--enforce-eager");
  return flags;
}

}  // namespace pagoda
