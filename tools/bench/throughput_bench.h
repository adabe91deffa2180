// `pagoda bench throughput`: offline throughput of the engine without a server — the model
// loaded in-process (InProcessExecutor, as `pagoda generate` runs it), every request of the
// dataset handed to one EngineLoop at once, and the wall time of running them all to completion
// (model loading and engine start-up excluded). Reports requests/s and tokens/s like vLLM's
// benchmark_throughput, and the decode rate: each request's first and last tokens are timed,
// giving the mean TPOT and the tokens after each first per second of decoding (DecodeThroughput:
// prefills and queueing left out).
//
//   ASSIGN_OR_RETURN(ThroughputBenchConfig config, ParseThroughputBenchFlags(argc, argv));
//   RETURN_IF_ERROR(RunThroughputBench(config));
#pragma once

#include "absl/status/status.h"
#include "tools/bench/bench_flags.h"

namespace pagoda {

absl::Status RunThroughputBench(const ThroughputBenchConfig& config);

}  // namespace pagoda
