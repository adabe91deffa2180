#include "tests/testing/stories260k.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "common/formats/llama2c.h"
#include "nlohmann/json.hpp"

namespace pagoda::testing {
namespace {

namespace fs = std::filesystem;

// Owns the converted directory for the life of the process.
struct ConvertedModel {
  std::string dir;
  ConvertedModel() {
    dir = (fs::temp_directory_path() / ("pagoda_stories260k_" + std::to_string(getpid()))).string();
    const std::string src = Stories260KSourceDir();
    const absl::Status status =
        ConvertLlama2cModel(src + "/stories260K.bin", src + "/tok512.bin", dir);
    if (!status.ok()) {
      std::fprintf(stderr, "cannot convert stories260K: %s\n",
                   std::string(status.message()).c_str());
      std::abort();
    }
  }
  ~ConvertedModel() {
    std::error_code ignored;
    fs::remove_all(dir, ignored);
  }
};

}  // namespace

std::string Stories260KSourceDir() {
  // The GPU bundle (scripts/gpu-check.sh) carries the models to another machine and says where.
  const char* shared = std::getenv("PAGODA_SHARED_DIR");
  if (shared != nullptr && *shared != '\0') return std::string(shared) + "/models/stories260K";
  return std::string(PAGODA_SHARED_DIR) + "/models/stories260K";
}

const std::string& Stories260KDir() {
  static const ConvertedModel* model = new ConvertedModel();
  static const struct Cleanup {
    ~Cleanup() { delete model; }
  } cleanup;
  return model->dir;
}

std::vector<GoldenCase> LoadStories260KGoldens() {
  std::vector<GoldenCase> goldens;
  std::ifstream in(Stories260KSourceDir() + "/golden_greedy.jsonl");
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const nlohmann::json j = nlohmann::json::parse(line);
    goldens.push_back({j["prompt"], j["prompt_ids"], j["greedy_ids"], j["greedy_text"]});
  }
  return goldens;
}

}  // namespace pagoda::testing
