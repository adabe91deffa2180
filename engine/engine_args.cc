#include "engine/engine_args.h"

#include <algorithm>
#include <limits>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"

namespace pagoda {
namespace {

constexpr int64_t kMaxBlockSize = 1024;
constexpr double kMaxMemoryGib = 1 << 20;  // keeps the byte counts far from overflow

// Prefixes an enum parser's error with the flag it came from.
template <typename T>
absl::StatusOr<T> ParseFlagValue(const char* flag, absl::StatusOr<T> parsed) {
  if (parsed.ok()) return parsed;
  return absl::InvalidArgumentError(absl::StrCat("--", flag, ": ", parsed.status().message()));
}

absl::Status CheckGib(const char* flag, double gib) {
  if (!(gib >= 0 && gib <= kMaxMemoryGib)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " must be in [0, ", kMaxMemoryGib, "] GiB, got ", gib));
  }
  return absl::OkStatus();
}

int64_t GibToBytes(double gib) { return static_cast<int64_t>(gib * (int64_t{1} << 30)); }

// The shortest text that reads back as exactly `value`.
std::string FormatDouble(double value) {
  for (int precision : {6, 15}) {
    const std::string text = absl::StrFormat("%.*g", precision, value);
    double back = 0;
    if (absl::SimpleAtod(text, &back) && back == value) return text;
  }
  return absl::StrFormat("%.17g", value);
}

}  // namespace

void EngineArgs::Register(ArgParser& parser) {
  parser.AddInt("block-size", &block_size, "KV cache block size in tokens");
  parser.AddInt("num-gpu-blocks-override", &num_gpu_blocks_override,
                "KV cache blocks per rank (0: sized within --kv-cache-memory-gib)");
  parser.AddDouble("kv-cache-memory-gib", &kv_cache_memory_gib, "KV cache memory per rank (GiB)");
  parser.AddDouble("swap-space", &swap_space_gib,
                   "Host memory per rank (GiB) for swapped-out KV blocks (0: none)");
  parser.AddInt("max-model-len", &max_model_len, "Context length in tokens (0: the model's)");
  parser.AddInt("max-num-seqs", &max_num_seqs, "Sequences running at once");
  parser.AddInt("max-num-batched-tokens", &max_num_batched_tokens,
                "New tokens per step across the batch (longer prompts are chunked)");
  parser.AddInt("num-scheduler-steps", &num_scheduler_steps,
                "Decode steps planned at once (multi-step scheduling)");
  parser.AddBoolPair("enable-prefix-caching", &enable_prefix_caching,
                     "Share the KV blocks of identical prompt prefixes across requests");
  parser.AddBool("disable-async-output-proc", &disable_async_output_proc,
                 "Process each step's outputs before planning the next");
  parser.AddString("preemption-mode", &preemption_mode,
                   "recompute or swap (needs --swap-space) when KV blocks run out");
  parser.AddString("scheduling-policy", &scheduling_policy,
                   "fcfs or priority (a lower request priority is served first)");
  parser.AddString("speculative-config", &speculative_config,
                   "Speculative decoding as JSON, e.g. '{\"method\": \"ngram\", "
                   "\"num_speculative_tokens\": 4, \"prompt_lookup_max\": 4}' (empty: off)");
  if (offline) {
    parser.AddString("scheduler", &scheduler,
                     "continuous (the engine) or static (fixed waves, a baseline)");
  }
  parser.AddDeprecatedAlias("num-kv-blocks", "num-gpu-blocks-override");
  parser.AddDeprecatedAlias("kv-cache-blocks", "num-gpu-blocks-override");
  parser.AddDeprecatedAlias("swap-space-gib", "swap-space");
  parser.AddDeprecatedAlias("disable-prefix-caching", "no-enable-prefix-caching");
  parser.AddDeprecatedAlias("no-async-output", "disable-async-output-proc");
}

absl::StatusOr<EngineSetup> EngineArgs::Build() const {
  if (block_size < 1 || block_size > kMaxBlockSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("--block-size must be in [1, ", kMaxBlockSize, "], got ", block_size));
  }
  if (num_gpu_blocks_override < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--num-gpu-blocks-override must be >= 0, got ", num_gpu_blocks_override));
  }
  RETURN_IF_ERROR(CheckGib("kv-cache-memory-gib", kv_cache_memory_gib));
  if (num_gpu_blocks_override == 0 && kv_cache_memory_gib <= 0) {
    return absl::InvalidArgumentError(
        "--kv-cache-memory-gib must be > 0 unless --num-gpu-blocks-override sets the blocks");
  }
  RETURN_IF_ERROR(CheckGib("swap-space", swap_space_gib));
  if (max_model_len < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max-model-len must be >= 0, got ", max_model_len));
  }

  EngineSetup setup;
  EngineConfig& engine = setup.engine;
  engine.max_num_seqs = max_num_seqs;
  engine.max_num_batched_tokens = max_num_batched_tokens;
  engine.max_model_len = max_model_len;
  engine.num_scheduler_steps = static_cast<int32_t>(
      std::clamp<int64_t>(num_scheduler_steps, std::numeric_limits<int32_t>::min(),
                          std::numeric_limits<int32_t>::max()));
  engine.enable_prefix_caching = enable_prefix_caching;
  engine.async_output = !disable_async_output_proc;
  ASSIGN_OR_RETURN(engine.preemption_mode,
                   ParseFlagValue("preemption-mode", ParsePreemptionMode(preemption_mode)));
  ASSIGN_OR_RETURN(engine.policy,
                   ParseFlagValue("scheduling-policy", ParseSchedulingPolicy(scheduling_policy)));
  ASSIGN_OR_RETURN(engine.scheduler, ParseFlagValue("scheduler", ParseSchedulerKind(scheduler)));
  ASSIGN_OR_RETURN(engine.speculative, ParseSpeculativeConfig(speculative_config));

  setup.cache = {.block_size = block_size,
                 .num_gpu_blocks_override = num_gpu_blocks_override,
                 .kv_cache_memory_bytes = GibToBytes(kv_cache_memory_gib),
                 .swap_space_bytes = GibToBytes(swap_space_gib)};
  // The executor's real capacity and the model's positions are known once it is built (and the
  // engine checks the config against them again); everything else is checked now, the cache's
  // size against the context too when both are given.
  RETURN_IF_ERROR(engine.Validate(
      {.num_device_blocks = num_gpu_blocks_override > 0 && max_model_len > 0
                                ? num_gpu_blocks_override
                                : std::numeric_limits<int64_t>::max(),
       .num_host_blocks = setup.cache.swap_space_bytes > 0 ? 1 : 0,
       .block_size = block_size,
       .max_model_len = max_model_len > 0 ? max_model_len : std::numeric_limits<int64_t>::max()}));
  return setup;
}

std::vector<std::string> EngineArgs::GivenFlags(const ArgParser& parser) const {
  std::vector<std::string> flags;
  auto add = [&](const char* name, const std::string& value) {
    if (parser.WasSet(name)) flags.push_back(absl::StrCat("--", name, "=", value));
  };
  add("block-size", absl::StrCat(block_size));
  add("num-gpu-blocks-override", absl::StrCat(num_gpu_blocks_override));
  add("kv-cache-memory-gib", FormatDouble(kv_cache_memory_gib));
  add("swap-space", FormatDouble(swap_space_gib));
  add("max-model-len", absl::StrCat(max_model_len));
  add("max-num-seqs", absl::StrCat(max_num_seqs));
  add("max-num-batched-tokens", absl::StrCat(max_num_batched_tokens));
  add("num-scheduler-steps", absl::StrCat(num_scheduler_steps));
  if (parser.WasSet("enable-prefix-caching") || parser.WasSet("no-enable-prefix-caching")) {
    flags.push_back(enable_prefix_caching ? "--enable-prefix-caching"
                                          : "--no-enable-prefix-caching");
  }
  if (parser.WasSet("disable-async-output-proc")) flags.push_back("--disable-async-output-proc");
  add("preemption-mode", preemption_mode);
  add("scheduling-policy", scheduling_policy);
  if (offline) add("scheduler", scheduler);
  add("speculative-config", speculative_config);
  return flags;
}

}  // namespace pagoda
