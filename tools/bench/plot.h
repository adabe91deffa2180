// --plot DIR: PNG charts of a serving run, drawn by tools/bench/plot_bench.py with Debian's
// python3-matplotlib (run as /usr/bin/python3, so a virtualenv on PATH does not matter). The
// script is found in the source tree the binary was built from.
//
//   RETURN_IF_ERROR(WritePlots("/tmp/run/result.json", "/tmp/run"));
//   // /tmp/run/latency_cdf.png, /tmp/run/throughput.png
#pragma once

#include <string>

#include "absl/status/status.h"

namespace pagoda {

/// The script's path (PAGODA_BENCH_PLOT_SCRIPT at build time).
std::string PlotScriptPath();

/// Draws the charts of `result_json` (a `pagoda bench serve` result file) into `out_dir`.
absl::Status WritePlots(const std::string& result_json, const std::string& out_dir);

}  // namespace pagoda
