#include "tools/bench/plot.h"

#include <filesystem>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "common/subprocess.h"

namespace pagoda {
namespace {

constexpr char kPython[] = "/usr/bin/python3";
constexpr absl::Duration kPlotTimeout = absl::Minutes(5);

}  // namespace

std::string PlotScriptPath() { return PAGODA_BENCH_PLOT_SCRIPT; }

absl::Status WritePlots(const std::string& result_json, const std::string& out_dir) {
  if (!std::filesystem::exists(PlotScriptPath())) {
    return absl::NotFoundError(absl::StrCat("--plot: the plot script ", PlotScriptPath(),
                                            " is missing (it is read from the source tree)"));
  }
  const std::string log = absl::StrCat(out_dir, "/plot.log");
  ASSIGN_OR_RETURN(
      Subprocess python,
      Subprocess::Start({kPython, PlotScriptPath(), result_json, out_dir}, {.log_file = log}));
  const std::optional<int> exit = python.Wait(kPlotTimeout);
  if (!exit.has_value()) {
    python.Terminate(absl::Seconds(1));
    return absl::DeadlineExceededError(absl::StrCat("--plot: ", PlotScriptPath(), " timed out"));
  }
  if (*exit != 0) {
    return absl::UnavailableError(
        absl::StrCat("--plot: ", PlotScriptPath(), " failed with status ", *exit, "; see ", log,
                     " (it needs python3-matplotlib: apt-get install python3-matplotlib)"));
  }
  std::error_code ignored;
  std::filesystem::remove(log, ignored);
  return absl::OkStatus();
}

}  // namespace pagoda
