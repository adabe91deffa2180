// `pagoda bench throughput`: offline throughput of the engine without a server — the model
// loaded in-process (InProcessExecutor, as `pagoda generate` runs it), every request of the
// dataset handed to one EngineLoop at once, and the wall time of running them all to completion
// (model loading and engine start-up excluded). Reports requests/s and tokens/s like vLLM's
// benchmark_throughput.
//
//   ASSIGN_OR_RETURN(ThroughputBenchConfig config, ParseThroughputBenchFlags(argc, argv));
//   RETURN_IF_ERROR(RunThroughputBench(config));
#pragma once

#include "absl/status/status.h"
#include "tools/bench/bench_flags.h"

namespace pagoda {

absl::Status RunThroughputBench(const ThroughputBenchConfig& config);

}  // namespace pagoda
