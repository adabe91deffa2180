// Test support: SmolLM2-135M-Instruct, the quick start's model (scripts/install-deps.sh fetches
// models/SmolLM2-135M-Instruct.Q4_1.gguf; tests skip when it is absent), and its float64 golden
// greedy outputs (../shared/models/smollm2/golden_greedy.jsonl; $PAGODA_SHARED_DIR overrides
// ../shared, as on the GPU bundle's machine).
//
//   if (!std::filesystem::exists(SmolLm2Path())) GTEST_SKIP();
//   for (const SmolLm2Golden& g : LoadSmolLm2Goldens()) { ... g.prompt_ids ... }
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pagoda::testing {

/// $PAGODA_SMOLLM2_GGUF, else models/SmolLM2-135M-Instruct.Q4_1.gguf of this checkout.
std::string SmolLm2Path();

struct SmolLm2Golden {
  std::string prompt;
  std::vector<int32_t> prompt_ids;
  std::vector<int32_t> greedy_ids;
  std::vector<double> top2_margin;  // per greedy token: its logit minus the runner-up's
};

/// Every golden case; empty when the file is missing.
std::vector<SmolLm2Golden> LoadSmolLm2Goldens();

}  // namespace pagoda::testing
