// `pagoda bench serve`: asks the server what it serves, builds the dataset (sized with the
// model's tokenizer, bounded by the server's context), sends it on the arrival schedule, then
// prints the report, writes --result-json and draws --plot.
//
//   ASSIGN_OR_RETURN(ServeBenchConfig config, ParseServeBenchFlags(argc, argv));
//   RETURN_IF_ERROR(RunServeBench(config));
#pragma once

#include "absl/status/status.h"
#include "tools/bench/bench_flags.h"

namespace pagoda {

absl::Status RunServeBench(const ServeBenchConfig& config);

}  // namespace pagoda
