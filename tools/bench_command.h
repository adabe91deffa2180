// `pagoda bench`: benchmarks of a running server and of the engine.
//
//   pagoda bench serve --target grpc://HOST:PORT|http://HOST:PORT --model-dir DIR
//                      [--dataset-name sharegpt-like|random|prefix|jsonl] [--num-prompts N]
//                      [--request-rate R|inf] [--burstiness B] [--max-concurrency C]
//                      [--slo ttft:MS,tpot:MS] [--result-json F] [--plot DIR] ...
//   pagoda bench throughput --model DIR [--load-format dummy] [dataset flags] [--result-json F]
//   pagoda bench compare A.json B.json
//
// See docs/cli.md (flags) and docs/performance.md (method and figures).
#pragma once

namespace pagoda {

/// Runs the subcommand; argv excludes "pagoda bench". Returns the process exit code: 0, 2 for
/// invalid flags or input, 1 for other failures.
int RunBenchCommand(int argc, const char* const* argv);

}  // namespace pagoda
