// `pagoda convert llama2c --checkpoint FILE.bin --tokenizer FILE.bin --out DIR`: writes a
// Hugging Face model directory from a llama2.c checkpoint and tokenizer.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace pagoda {

/// Converts checkpoint + tokenizer into out_dir (config.json, model.safetensors, tokenizer.json,
/// tokenizer_config.json). The tokenizer's vocabulary size must match the checkpoint's.
absl::Status ConvertLlama2cModel(const std::string& checkpoint_path,
                                 const std::string& tokenizer_path, const std::string& out_dir);

/// Runs the subcommand; argv excludes "pagoda convert". Returns the process exit code.
int RunConvertCommand(int argc, const char* const* argv);

}  // namespace pagoda
