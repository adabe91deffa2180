// A hostile tokenizer.json (+ tokenizer_config.json): the input is split at the first NUL byte
// into the two files; a tokenizer that loads then encodes and decodes a fixed text.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "common/tokenizer/incremental_detokenizer.h"
#include "common/tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t split = input.find('\0');
  const std::string_view tokenizer_json = input.substr(0, split);
  const std::string_view config_json =
      split == std::string_view::npos ? std::string_view() : input.substr(split + 1);
  absl::StatusOr<std::unique_ptr<pagoda::Tokenizer>> tokenizer =
      pagoda::Tokenizer::FromJson(tokenizer_json, config_json, "<fuzz input>");
  if (!tokenizer.ok()) return 0;
  const std::vector<int32_t> ids =
      (*tokenizer)->Encode("Hello world! \xc3\xa9t\xc3\xa9 \xe4\xb8\xad 12345 <s></s>\n\t", true);
  (void)(*tokenizer)->Decode(ids, /*skip_special_tokens=*/true);
  pagoda::IncrementalDetokenizer detokenizer(**tokenizer, {});
  for (int32_t id : ids) (void)detokenizer.Append(id);
  (void)detokenizer.Finish();
  for (int32_t id = -1; id < 8; ++id) (void)(*tokenizer)->IdToToken(id);
  return 0;
}
