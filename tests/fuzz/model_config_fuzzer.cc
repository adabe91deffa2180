// A hostile config.json: ModelConfig's parser and the tensor-parallel checks made on it.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/model_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::StatusOr<pagoda::ModelConfig> config = pagoda::ModelConfig::FromJson(
      std::string_view(reinterpret_cast<const char*>(data), size), "<fuzz input>");
  if (!config.ok()) return 0;
  for (int64_t tp : {1, 2, 3, 8}) (void)pagoda::CheckTensorParallelSize(*config, tp);
  return 0;
}
