#include "tools/bench/synthetic_tokenizer.h"

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace pagoda {

absl::StatusOr<std::unique_ptr<Tokenizer>> MakeSyntheticTokenizer(int64_t vocab_size) {
  nlohmann::json vocab = nlohmann::json::object();
  for (int64_t id = 0; id < vocab_size; ++id) vocab[absl::StrCat("t", id)] = id;
  const nlohmann::json root = {
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array()}}}};
  return Tokenizer::FromJson(root.dump(), "", "synthetic");
}

}  // namespace pagoda
