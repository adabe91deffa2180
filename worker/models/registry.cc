#include "worker/models/registry.h"

#include <array>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "worker/models/gemma.h"
#include "worker/models/llama.h"

namespace pagoda {
namespace {

struct Entry {
  std::string_view architecture;
  const ModelArchitecture& (*definition)();
};

constexpr std::array<Entry, 9> kEntries = {{
    {"LlamaForCausalLM", &LlamaFamily},
    {"MistralForCausalLM", &LlamaFamily},
    {"Qwen2ForCausalLM", &LlamaFamily},
    {"Qwen3ForCausalLM", &LlamaFamily},  // the llama forward with config.qk_norm
    {"Phi3ForCausalLM", &LlamaFamily},   // fused checkpoints (config.fused_projections)
    // The llama forward with the experts of worker/models/moe.h in its sparse layers.
    {"Qwen3MoeForCausalLM", &LlamaFamily},
    {"MixtralForCausalLM", &LlamaFamily},
    {"Gemma2ForCausalLM", &GemmaFamily},
    {"Gemma3ForCausalLM", &GemmaFamily},
}};

}  // namespace

absl::StatusOr<const ModelArchitecture*> FindModelArchitecture(std::string_view architecture) {
  for (const Entry& entry : kEntries) {
    if (entry.architecture == architecture) return &entry.definition();
  }
  std::vector<std::string> names;
  for (const Entry& entry : kEntries) names.emplace_back(entry.architecture);
  return absl::UnimplementedError(
      absl::StrCat("architecture '", std::string(architecture),
                   "' has no model definition; supported: ", absl::StrJoin(names, ", ")));
}

}  // namespace pagoda
