// `pagoda convert llama2c --checkpoint FILE.bin --tokenizer FILE.bin --out DIR`: writes a
// Hugging Face model directory from a llama2.c checkpoint and tokenizer.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace pagoda {

/// Runs the subcommand; argv excludes "pagoda convert". Returns the process exit code.
int RunConvertCommand(int argc, const char* const* argv);

}  // namespace pagoda
