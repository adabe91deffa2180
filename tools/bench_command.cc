#include "tools/bench_command.h"

#include <cstdio>
#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/arg_parser.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "tools/bench/bench_flags.h"
#include "tools/bench/compare.h"
#include "tools/bench/report.h"
#include "tools/bench/serve_bench.h"
#include "tools/bench/throughput_bench.h"

namespace pagoda {
namespace {

constexpr char kUsage[] =
    "Usage: pagoda bench <mode> [flags]\n"
    "\n"
    "Modes:\n"
    "  serve        Benchmark a running server over gRPC or HTTP (TTFT, TPOT, ITL, E2E latency,\n"
    "               throughput, goodput)\n"
    "  throughput   Offline throughput of the in-process engine (all requests at once)\n"
    "  compare      Two --result-json files side by side, with ratios\n"
    "\n"
    "Run 'pagoda bench <mode> --help' for a mode's flags.\n";

absl::Status Compare(int argc, const char* const* argv) {
  std::string path_a, path_b;
  ArgParser parser("pagoda bench compare",
                   "Print two --result-json files side by side with the ratio B / A.");
  parser.AddPositional("A.json", &path_a, "The baseline result");
  parser.AddPositional("B.json", &path_b, "The result compared with it");
  RETURN_IF_ERROR(parser.Parse(argc, argv));
  ASSIGN_OR_RETURN(const nlohmann::json a, ReadJsonFile(path_a));
  ASSIGN_OR_RETURN(const nlohmann::json b, ReadJsonFile(path_b));
  std::fputs(FormatComparison(a, b, path_a, path_b).c_str(), stdout);
  return absl::OkStatus();
}

absl::Status Run(const std::string& mode, int argc, const char* const* argv) {
  RETURN_IF_ERROR(InitLogging("pagoda", "warn"));
  if (mode == "serve") {
    ASSIGN_OR_RETURN(const ServeBenchConfig config, ParseServeBenchFlags(argc, argv));
    return RunServeBench(config);
  }
  if (mode == "throughput") {
    ASSIGN_OR_RETURN(const ThroughputBenchConfig config, ParseThroughputBenchFlags(argc, argv));
    return RunThroughputBench(config);
  }
  if (mode == "compare") return Compare(argc, argv);
  return absl::InvalidArgumentError(absl::StrCat("unknown mode '", mode, "'\n\n", kUsage));
}

}  // namespace

int RunBenchCommand(int argc, const char* const* argv) {
  if (argc < 1 || std::strcmp(argv[0], "--help") == 0 || std::strcmp(argv[0], "-h") == 0) {
    std::fputs(kUsage, argc < 1 ? stderr : stdout);
    return argc < 1 ? 2 : 0;
  }
  const absl::Status status = Run(argv[0], argc - 1, argv + 1);
  if (absl::IsCancelled(status)) return 0;  // --help
  if (!status.ok()) {
    std::fprintf(stderr, "pagoda bench %s: %s\n", argv[0], std::string(status.message()).c_str());
    return absl::IsInvalidArgument(status) || absl::IsNotFound(status) ? 2 : 1;
  }
  return 0;
}

}  // namespace pagoda
