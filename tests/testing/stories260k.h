// Test support: the stories260K model of ../shared/models converted once per test process into
// a Hugging Face directory, and its golden greedy outputs.
//
//   const std::string& dir = Stories260KDir();          // converted on first use
//   for (const GoldenCase& golden : LoadStories260KGoldens()) { ... }
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pagoda::testing {

/// ../shared/models/stories260K (the llama2.c checkpoint and tokenizer).
std::string Stories260KSourceDir();

/// A temporary directory holding the converted model (config.json, model.safetensors,
/// tokenizer.json), created on first use and removed when the process exits. Aborts the test
/// process if the conversion fails (nothing else could run).
const std::string& Stories260KDir();

struct GoldenCase {
  std::string prompt;
  std::vector<int32_t> prompt_ids;
  std::vector<int32_t> greedy_ids;  // the greedy continuation, max_tokens = its length
  std::string greedy_text;
};

/// golden_greedy.jsonl of the source directory.
std::vector<GoldenCase> LoadStories260KGoldens();

}  // namespace pagoda::testing
