// The flags of `pagoda bench serve` and `pagoda bench throughput`, parsed and validated into
// immutable configs (every error names its flag). The dataset flags are shared; throughput's
// engine flags are everyone's (engine/engine_args.h).
//
//   ASSIGN_OR_RETURN(ServeBenchConfig config, ParseServeBenchFlags(argc, argv));
//   // absl::IsCancelled: --help was printed
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/model_args.h"
#include "engine/engine_args.h"
#include "tools/bench/arrivals.h"
#include "tools/bench/bench_metrics.h"
#include "tools/bench/dataset.h"
#include "tools/bench/serving_backend.h"

namespace pagoda {

/// What both modes share: the requests and how they are sampled.
struct WorkloadConfig {
  DatasetOptions dataset;     // max_model_len: --max-model-len, 0 = the server's / model's
  std::string tokenizer_dir;  // empty: none (jsonl only)
  double temperature = 0;
  bool ignore_eos = false;
  std::string result_json;  // empty: no file
};

struct ServeBenchConfig {
  BenchTarget target;
  std::string model;  // the served model's name; empty: whatever the server serves
  std::string api_key;
  WorkloadConfig workload;
  ArrivalOptions arrivals;
  int64_t max_concurrency = 0;  // 0: unlimited
  std::optional<SloSpec> slo;
  absl::Duration request_timeout = absl::Minutes(10);
  std::string plot_dir;   // empty: no charts
  bool progress = false;  // --progress: draw the bar even when stderr is no terminal
  // --structured-output-ratio: the share of requests with a JSON Schema (structured_workload.h)
  double structured_output_ratio = 0;
  std::string json_schema;  // the schema's text (--json-schema, or the default) when ratio > 0
};

struct ThroughputBenchConfig {
  std::string model_dir;
  std::string load_format = "auto";  // auto (safetensors) or dummy
  WorkloadConfig workload;           // dataset.max_model_len: the engine's --max-model-len
  EngineSetup engine;                // the engine flags (engine/engine_args.h)
  ModelMemoryConfig memory;          // --dtype, --kv-cache-dtype (common/model_args.h)
};

/// argv excludes "pagoda bench serve". kCancelled after --help.
absl::StatusOr<ServeBenchConfig> ParseServeBenchFlags(int argc, const char* const* argv);
/// argv excludes "pagoda bench throughput". kCancelled after --help.
absl::StatusOr<ThroughputBenchConfig> ParseThroughputBenchFlags(int argc, const char* const* argv);

}  // namespace pagoda
