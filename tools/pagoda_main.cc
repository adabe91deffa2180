// `pagoda`: the command line of Pagoda. Each subcommand parses its own flags.
#include <cstdio>
#include <cstring>
#include <string>

#include "common/openmp_wait_policy.h"
#include "tools/bench_command.h"
#include "tools/convert_command.h"
#include "tools/generate_command.h"
#include "tools/serve_command.h"

namespace {

constexpr char kUsage[] =
    "Usage: pagoda <command> [flags]\n"
    "\n"
    "Commands:\n"
    "  serve      Start a local cluster (router + replicas of tensor-parallel workers)\n"
    "  generate   Offline batch generation from a model directory\n"
    "  bench      Benchmark a server (bench serve) or the engine (bench throughput)\n"
    "  convert    Convert a checkpoint to a Hugging Face directory (convert llama2c ...)\n"
    "\n"
    "Run 'pagoda <command> --help' for a command's flags.\n";

}  // namespace

int main(int argc, char** argv) {
  pagoda::ExecWithShortOpenMpSpinUnlessSet(argv);
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string command = argv[1];
  if (command == "serve") return pagoda::RunServeCommand(argc - 2, argv + 2);
  if (command == "generate") return pagoda::RunGenerateCommand(argc - 2, argv + 2);
  if (command == "bench") return pagoda::RunBenchCommand(argc - 2, argv + 2);
  if (command == "convert") return pagoda::RunConvertCommand(argc - 2, argv + 2);
  std::fprintf(stderr, "pagoda: unknown command '%s'\n\n%s", command.c_str(), kUsage);
  return 2;
}
