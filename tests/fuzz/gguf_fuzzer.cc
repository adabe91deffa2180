// A hostile GGUF file: the reader, the ModelConfig mapping and the tokenizer built from its
// metadata (what a worker and the router do with `--model file.gguf` before any weight is read).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "common/formats/gguf.h"
#include "common/formats/gguf_model_config.h"
#include "common/tokenizer/gguf_tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::StatusOr<std::unique_ptr<pagoda::GgufFile>> file = pagoda::GgufFile::Parse(
      std::span<const std::byte>(reinterpret_cast<const std::byte*>(data), size), "<fuzz input>");
  if (!file.ok()) return 0;
  (void)pagoda::ModelConfigFromGguf(**file);
  (void)pagoda::GgufRopeIsInterleaved(**file);
  absl::StatusOr<std::unique_ptr<pagoda::Tokenizer>> tokenizer = pagoda::TokenizerFromGguf(**file);
  if (tokenizer.ok()) {
    const std::vector<int32_t> ids = (*tokenizer)->Encode("Hello, world! <|im_start|> 123", true);
    (void)(*tokenizer)->Decode(ids, /*skip_special_tokens=*/false);
  }
  return 0;
}
