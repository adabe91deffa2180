#include "tests/testing/smollm2.h"

#include <cstdlib>
#include <fstream>

#include "nlohmann/json.hpp"

namespace pagoda::testing {

std::string SmolLm2Path() {
  const char* env = std::getenv("PAGODA_SMOLLM2_GGUF");
  return env != nullptr ? std::string(env)
                        : std::string(PAGODA_MODELS_DIR) + "/SmolLM2-135M-Instruct.Q4_1.gguf";
}

std::vector<SmolLm2Golden> LoadSmolLm2Goldens() {
  std::vector<SmolLm2Golden> goldens;
  // The GPU bundle (scripts/gpu-check.sh) carries the goldens to another machine and says where.
  const char* env = std::getenv("PAGODA_SHARED_DIR");
  const std::string shared =
      env != nullptr && *env != '\0' ? std::string(env) : std::string(PAGODA_SHARED_DIR);
  std::ifstream in(shared + "/models/smollm2/golden_greedy.jsonl");
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const nlohmann::json j = nlohmann::json::parse(line);
    goldens.push_back({j["prompt"], j["prompt_ids"], j["greedy_ids"], j["top2_margin"]});
  }
  return goldens;
}

}  // namespace pagoda::testing
