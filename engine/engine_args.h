// EngineArgs: the engine flags of every command that runs an engine — pagoda-router, pagoda serve
// (which passes them on to its router), pagoda generate and pagoda bench throughput — registered
// in one place under vLLM's names and validated once, into an EngineConfig and the KV cache
// sizing the executor (the worker side) builds its cache from.
//
// The struct's values when Register() runs are the defaults --help shows, so a command states its
// own defaults with designated initializers (offline commands keep prefix caching off, as
// before). The old spellings still work for one release, with a warning naming the new flag.
//
//   EngineArgs engine_args{.kv_cache_memory_gib = 4.0, .enable_prefix_caching = false,
//                          .offline = true};
//   engine_args.Register(parser);
//   RETURN_IF_ERROR(parser.Parse(argc, argv));
//   ASSIGN_OR_RETURN(const EngineSetup setup, engine_args.Build());  // errors name the flag
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/arg_parser.h"
#include "engine/engine_config.h"

namespace pagoda {

/// The KV cache of each rank, as the executor builds it.
struct CacheConfig {
  int64_t block_size = 16;              // tokens per block
  int64_t num_gpu_blocks_override = 0;  // device blocks; 0: as many as the memory below holds
  int64_t kv_cache_memory_bytes = 0;    // device memory for KV blocks (without an override)
  int64_t swap_space_bytes = 0;         // host memory for swapped-out blocks; 0: no swapping
};

/// What the engine flags decide.
struct EngineSetup {
  EngineConfig engine;  // max_model_len 0: the model's; max_waiting_requests 0 (unbounded)
  CacheConfig cache;
};

struct EngineArgs {
  int64_t block_size = 16;
  int64_t num_gpu_blocks_override = 0;
  double kv_cache_memory_gib = 0.25;
  double swap_space_gib = 0;
  int64_t max_model_len = 0;
  int64_t max_num_seqs = 256;
  int64_t max_num_batched_tokens = 4096;
  int64_t num_scheduler_steps = 1;
  bool enable_prefix_caching = true;
  bool disable_async_output_proc = false;
  std::string preemption_mode = "recompute";
  std::string scheduling_policy = "fcfs";
  std::string scheduler = "continuous";
  std::string speculative_config;  // JSON (engine/speculative_config.h); empty: off
  /// Also registers --scheduler (continuous | static): static batching is a baseline for offline
  /// runs (pagoda generate, pagoda bench throughput), not a way to serve.
  bool offline = false;

  /// Adds every engine flag, and the deprecated spellings, to `parser`.
  void Register(ArgParser& parser);
  /// After parser.Parse(): the ranges and combinations checked (the model-dependent ones, like
  /// max_model_len against the model's positions, wait for the executor).
  absl::StatusOr<EngineSetup> Build() const;
  /// The engine flags given on `parser`'s command line, in their current spelling
  /// ("--name=value"): what pagoda serve passes on to pagoda-router.
  std::vector<std::string> GivenFlags(const ArgParser& parser) const;
};

}  // namespace pagoda
